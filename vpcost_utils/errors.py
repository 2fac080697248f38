"""The package's exceptions: one root, one subclass per kind of problem.

Every message names the problem and the fix (a list of valid choices, the file to fetch and the
folder to put it in), so a researcher can act on it without reading our code.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VpcostError(Exception):
    """Root of every error raised on purpose by vpcost_utils."""


class UnknownNameError(VpcostError, KeyError):
    """A dataset, model, method or profile name that no registry knows."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        close = difflib.get_close_matches(name, self.choices, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        shown = ", ".join(self.choices[:40]) + (" ..." if len(self.choices) > 40 else "")
        super().__init__(f"unknown {kind} {name!r}.{hint} Known {kind}s: {shown}")

    def __str__(self) -> str:  # KeyError would otherwise print the message in quotes
        return self.args[0]


class SpecError(VpcostError, ValueError):
    """A run spec or notebook parameter with a wrong value or type."""


class MissingFileError(VpcostError, FileNotFoundError):
    """A checkpoint or dataset that is not on disk and cannot be downloaded here."""

    def __init__(self, what: str, expected: str, source: str, folder: str):
        self.what, self.expected, self.source, self.folder = what, expected, source, folder
        super().__init__(
            f"{what}: {expected} is missing. Get it from {source} and put it in {folder} "
            "(or set VPCOST_HOME to a folder that has it)."
        )

    def __str__(self) -> str:
        return self.args[0]


class DatasetFileError(VpcostError, ValueError):
    """A raw dataset file that is present but truncated, malformed or not the file its name claims."""


class CheckpointError(VpcostError):
    """A checkpoint that loaded but is not what its name claims (keys, shapes, sparsity, bits)."""


class ModelOutputError(VpcostError, ValueError):
    """A source model that does not map a ``[B, 3, canvas, canvas]`` batch to ``[B, K]`` logits."""


class DatasetLayoutError(VpcostError, ValueError):
    """An image folder that cannot be read as a dataset (a class missing from a split, an empty class)."""


def check_choice(kind: str, name: str, choices: Iterable[str]) -> str:
    """Return ``name`` if it is one of ``choices``, else raise UnknownNameError listing them."""
    choices = list(choices)
    if name not in choices:
        raise UnknownNameError(kind, name, choices)
    return name
