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


# --- the whole package: imports run one way ------------------------------------------------------------------------

def _module_graph() -> dict[str, set[str]]:
    """Every module of the package -> the package modules it imports (lazily inside functions too).

    ``from . import x`` of a submodule ``x`` is an edge to ``x`` only, not to the package's ``__init__``
    (which Python has already started importing).
    """
    modules: dict[str, tuple[Path, bool]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name.split(".") if is_package else name.split(".")[:-1]
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package[:len(package) - (node.level - 1)] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                subs = {f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in modules}
                if len(subs) < len(node.names):
                    out.add(module)
                out |= subs
        graph[name] = {m for m in out if m in modules and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def _reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _in(name: str, package: str) -> bool:
    return name == f"vpcost_utils.{package}" or name.startswith(f"vpcost_utils.{package}.")


def test_the_package_import_graph_has_no_cycle():
    cycles = _cycles(_module_graph())
    assert cycles == [], f"import cycles (break each with a registry the lower module fills, not an import up): " \
                         f"{cycles}"


@pytest.mark.parametrize("lower, never", [("models", "data"), ("data", "models"), ("fetch", "data"),
                                          ("fetch", "models")])
def test_a_lower_layer_never_reaches_another_through_any_path(lower, never):
    graph = _module_graph()
    starts = [m for m in graph if _in(m, lower)]
    bad = {m: sorted(r for r in _reaches(graph, m) if _in(r, never)) for m in starts}
    bad = {m: r for m, r in bad.items() if r}
    assert bad == {}, f"{lower} reaches {never}: {bad}"


def test_the_graph_checks_see_a_cycle_and_an_indirect_path():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "vpcost_utils.models.x": {"vpcost_utils.y"},
             "vpcost_utils.y": {"vpcost_utils.data.z"}, "vpcost_utils.data.z": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert "vpcost_utils.data.z" in _reaches(graph, "vpcost_utils.models.x")
