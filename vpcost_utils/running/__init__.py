"""Running specs: one run (``runs``: ``python -m vpcost_utils.running.runs``), its records (``store``), a grid
of runs on a runner (``sweep``), what a grid needs before it starts (``preflight``) and what it costs
(``plan``: ``python -m vpcost_utils.running.plan``); the mini profile's registry files (``mini_files``)."""
