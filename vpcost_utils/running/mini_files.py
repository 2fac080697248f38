"""The mini profile's registry files: ``python -m vpcost_utils.running.mini_files`` fetches (or checks) all of them.

Each loader declares the files it reads beside its own code (``data.mnist.REGISTRY_FILES``,
``models.efficientnet_lite.FILES``, ``models.tflite_int8.TFLITE_FILE``); this module, above both ``data`` and
``models``, gathers them and hands them to ``fetch``, which imports neither (tests/test_layering.py).
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import paths
from ..fetch import RegistryFile, fetch_many


def mini_files() -> list[tuple[str, list[RegistryFile], Path]]:
    """Every registry file the ``mini`` profile reads, grouped as (what, files, folder)."""
    from ..data.mnist import REGISTRY_FILES
    from ..models.efficientnet_lite import FILES
    from ..models.tflite_int8 import TFLITE_FILE

    groups = [(f"efficientnet_lite{v} weights", [f], paths.checkpoints_dir()) for v, f in FILES.items()]
    groups.append(("int8 EfficientNet-Lite0 (TFLite)", [TFLITE_FILE], paths.checkpoints_dir()))
    groups += [(name, list(files.values()), paths.datasets_dir() / name / "registry")
               for name, files in REGISTRY_FILES.items()]
    return groups


def main() -> int:
    """``python -m vpcost_utils.running.mini_files``: fetch (or check) every registry file of the mini profile."""
    for what, files, folder in mini_files():
        start = time.time()
        placed = fetch_many(files, folder)
        size = sum(p.stat().st_size for p in placed) / 1e6
        print(f"{what}: {len(placed)} file(s), {size:.1f} MB in {folder} ({time.time() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
