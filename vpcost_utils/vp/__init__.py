"""Image visual prompting (the paper's method): the prompts (``visual_prompts``), label mapping
(``label_mapping``: RLM / FLM / ILM), temperature scaling, and the run (``train_vp.run_vp``). CLIP's
variant lives in ``clip/``, the cross-modal reprogrammer in ``crossmodal/``."""
