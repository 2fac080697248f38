"""Studies of the method itself, each a command: seed and test-set noise (``noise_study``), when a verdict
settles (``verdict_study``), recovered models' agreement (``agreement_study``), and that a killed run resumes
to the same record (``kill_resume``). Nothing else in the package imports them."""
