"""Dependency direction: models know neither the loops that train or prompt them nor the data they see.

Every module of ``vpcost_utils/models/`` is parsed (ast, so lazy imports inside functions count too)
and may not import ``vpcost_utils.clip``, ``.crossmodal``, ``.data``, ``.train`` or ``.pretrain``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vpcost_utils"
MODELS = PACKAGE / "models"
FORBIDDEN = ("clip", "crossmodal", "data", "train", "pretrain")


def _imported_modules(source: str, package: str) -> set[str]:
    """Absolute dotted names of every module ``source`` (a module of ``package``) imports."""
    package = package.split(".")
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - (node.level - 1)] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            # `from .. import data` imports the submodule `data`
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _violations(source: str, package: str = "vpcost_utils.models") -> list[str]:
    bad = []
    for name in sorted(_imported_modules(source, package)):
        parts = name.split(".")
        if parts[0] == "vpcost_utils" and len(parts) > 1 and parts[1] in FORBIDDEN:
            bad.append(name)
    return bad


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.py")), ids=lambda p: p.name)
def test_models_import_no_training_loop_and_no_dataset(path):
    bad = _violations(path.read_text())
    assert bad == [], f"{path.relative_to(PACKAGE.parent)} imports {bad}: move that code out of models/ (pretrain/?)"


def test_the_checker_sees_relative_lazy_and_absolute_imports():
    source = ("import torch\nfrom .. import paths\nfrom ._registry import register\n"
              "def f():\n    from ..data.synthetic import source_split\n    from .. import train\n"
              "    import vpcost_utils.clip.tiny\n")
    bad = set(_violations(source))
    assert {"vpcost_utils.clip.tiny", "vpcost_utils.data.synthetic", "vpcost_utils.train"} <= bad
    assert not any("paths" in b or "_registry" in b or "torch" in b for b in bad)
