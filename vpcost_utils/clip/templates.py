"""Text templates and class-name cleaning for CLIP's zero-shot head.

``ILM_TEMPLATES`` are the 81 the authors' ILM-VP CLIP script embeds: "This is a photo of a {}."
followed by the 80 prompt-engineering templates OpenAI published for ImageNet. ``BAHNG_TEMPLATE``
is the single template of Bahng et al.'s VP (no trailing period).
"""

from __future__ import annotations

import re

BAHNG_TEMPLATE = "This is a photo of a {}"

CLIP_IMAGENET_TEMPLATES = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.",
    "a photo of a {}.", "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
    "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.",
    "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.",
    "a photo of the weird {}.", "the cartoon {}.", "art of the {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.",
    "itap of a {}.", "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
)

ILM_TEMPLATES = ("This is a photo of a {}.",) + CLIP_IMAGENET_TEMPLATES


def clean_classname(name: str) -> str:
    """Lower-case, ``_`` and ``-`` to spaces, collapsed whitespace (Bahng et al.'s ``refine_classname``)."""
    return re.sub(r"\s+", " ", name.lower().replace("_", " ").replace("-", " ")).strip()


def prompts_for(classnames: list[str], templates: tuple[str, ...]) -> list[str]:
    """Template-major list of prompts: row ``t * K + c`` is template ``t`` filled with class ``c``."""
    cleaned = [clean_classname(c) for c in classnames]
    return [t.format(c) for t in templates for c in cleaned]
