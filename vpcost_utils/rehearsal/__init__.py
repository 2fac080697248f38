"""The rehearsal runner: every notebook of a GPU profile on random weights and fake files, on a CPU.

``python -m vpcost_utils.rehearsal.rehearse --profile quick`` (``make rehearse``). ``rehearse`` runs it,
``thinning`` says which parameters each notebook gets, ``fakes`` writes the fake files in the published
layouts. The mode switch the loaders read (``VPCOST_REHEARSAL``) is ``vpcost_utils.rehearsal_mode``, at
the bottom of the house; this package sits at the top, above everything it rehearses.
"""
