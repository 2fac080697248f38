"""Finding checkpoint files: the cache folder first, then a download, else a clear error.

Downloads go through ``torch.hub.download_url_to_file`` into ``paths.checkpoints_dir()`` and are
checked by sha256 when the registry knows it. Set ``VPCOST_OFFLINE=1`` to never try the network.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import paths
from .. import rehearsal_mode as rehearsal
from ..errors import CheckpointError, MissingFileError
from ..fetch import offline, sha256_of  # noqa: F401  (sha256_of re-exported for the family loaders)
from ._registry import ModelEntry


def resolve_checkpoint(entry: ModelEntry, filename: str | None = None) -> Path:
    """Path of ``entry``'s checkpoint file, downloading it when it has a plain URL and we may.

    Raises ``MissingFileError`` naming the file, where it comes from and the folder to put it in.
    """
    filename = filename or entry.filename
    if not filename:
        raise ValueError(f"{entry.name} has no checkpoint file name in the registry")
    folder = paths.checkpoints_dir()
    path = folder / filename
    if not path.exists() and entry.source.startswith(("http://", "https://")) and not offline():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(entry.source, str(path), progress=True)
        except Exception as exc:  # no network, 404, quota: all end in the same advice
            path.unlink(missing_ok=True)
            raise MissingFileError(f"checkpoint of {entry.name}", filename, entry.source, str(folder)) from exc
    if not path.exists():
        raise MissingFileError(f"checkpoint of {entry.name}", filename, entry.source or "its authors", str(folder))
    # a rehearsal's fake files cannot have the real hash; every other check still runs
    if entry.sha256 and not rehearsal.active() and sha256_of(path) != entry.sha256:
        raise CheckpointError(f"{path} does not have the sha256 the registry expects for {entry.name} "
                              f"({entry.sha256}); the file is corrupt or a different release: delete it and fetch "
                              f"it again from {entry.source}")
    return path


_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)\.(\w+) ")
_BLOCKED_GLOBAL = re.compile(r"unsupported GLOBAL ([\w.]+) whose module [\w.]+ is blocked")
MAX_STUBBED_CLASSES = 32


def _inert_class(module: str, name: str) -> type:
    """A class that stands in for a pickled training-state class (an optimizer, a scheduler) and runs nothing.

    Constructing, un-pickling or ``__setstate__`` only store what they are given; no method of the
    original class exists, so loading such a checkpoint never executes code from it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    return type(name, (), {"__module__": module, "__qualname__": name, "__init__": __init__,
                           "__setstate__": __setstate__, "__repr__": lambda self: f"<inert {module}.{name}>"})


def load_file(path: Path) -> dict[str, Any]:
    """``torch.load`` on CPU with ``weights_only`` kept on.

    Some published checkpoints also pickle the authors' own training classes (ACDC's
    ``save_checkpoint`` stores ``optimization.sgd.SGD`` and ``optimization.lr_schedulers.CosineLR``
    objects next to the weights). Those are loaded as inert stand-ins (``_inert_class``) through
    torch's own weights-only unpickler, so the weights load and no pickled code runs; anything the
    weights-only unpickler refuses for another reason is reported as a damaged file.
    """
    stubs: list[type] = []
    while True:
        try:
            with torch.serialization.safe_globals(stubs):
                return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            match = _UNSUPPORTED_GLOBAL.search(str(exc))
            if match and len(stubs) < MAX_STUBBED_CLASSES and not match.group(1).startswith(("torch", "builtins")):
                stubs.append(_inert_class(*match.groups()))
                continue
            blocked = _BLOCKED_GLOBAL.search(str(exc))
            if blocked:
                raise CheckpointError(f"{path} pickles a call to {blocked.group(1)}, which loading would run; vpcost "
                                      "never runs code from a checkpoint. This is not a weights file of the "
                                      "registry: delete it and fetch it again from its source") from exc
            raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint ({exc}); the file is corrupt or "
                                  "truncated: delete it and fetch it again") from exc


WrongShapes = list[tuple[str, tuple, tuple]]  # (key, shape in the file, shape in the model)


def key_diff(module: torch.nn.Module, sd: dict[str, Any]) -> tuple[list[str], list[str], WrongShapes]:
    """(missing keys, unexpected keys, (key, file shape, model shape) of wrong shapes) of ``sd`` against ``module``."""
    own = module.state_dict()
    missing, unexpected = sorted(own.keys() - sd.keys()), sorted(sd.keys() - own.keys())
    shapes = [(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in sorted(own.keys() & sd.keys())
              if tuple(sd[k].shape) != tuple(own[k].shape)]
    return missing, unexpected, shapes


def strict_load(module: torch.nn.Module, sd: dict[str, Any], what: str,
                fix: str | Callable[[WrongShapes], str]) -> None:
    """``load_state_dict(strict=True)``, preceded by a key and shape diff; one ``CheckpointError`` lists every kind
    of mismatch (torch stops at the first and names no fix). ``fix`` may depend on the wrong shapes (a head hint)."""
    missing, unexpected, shapes = key_diff(module, sd)
    problems = [f"{len(missing)} missing keys (first: {missing[:5]})" if missing else "",
                f"{len(unexpected)} unexpected keys (first: {unexpected[:5]})" if unexpected else "",
                f"{len(shapes)} wrong shapes (first: " + ", ".join(f"{k}: file {f} vs model {m}"
                                                               for k, f, m in shapes[:3]) + ")" if shapes else ""]
    if any(problems):
        advice = fix(shapes) if callable(fix) else fix
        raise CheckpointError(f"{what}: {'; '.join(p for p in problems if p)}. {advice}")
    module.load_state_dict(sd, strict=True)
