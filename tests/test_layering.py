"""Dependency direction: the house's layers, bottom to top, and models that know no loop and no data.

Every module of the package is parsed (ast, so lazy imports inside functions count too). ``LAYERS`` is the
order; a module imports only from its own layer or the ones below it, and the graph has no cycle. Every
module of ``vpcost_utils/models/`` may not import ``vpcost_utils.clip``, ``.crossmodal``, ``.data``, ``.vp``
or ``.built``. No two modules share a basename, the top level stays small, and no module uses a path of
before the move (``_moved.MOVED``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vpcost_utils"
MODELS = PACKAGE / "models"
FORBIDDEN = ("clip", "crossmodal", "data", "vp", "built")


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
    assert bad == [], f"{path.relative_to(PACKAGE.parent)} imports {bad}: move that code out of models/ (built/?)"


def test_the_checker_sees_relative_lazy_and_absolute_imports():
    source = ("import torch\nfrom .. import paths\nfrom ._registry import register\n"
              "def f():\n    from ..data.synthetic import source_split\n    from ..vp import train_vp\n"
              "    import vpcost_utils.clip.tiny\n")
    bad = set(_violations(source))
    assert {"vpcost_utils.clip.tiny", "vpcost_utils.data.synthetic", "vpcost_utils.vp.train_vp"} <= bad
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


# --- the house: layers, bottom to top ---------------------------------------------------------------------------

#: Bottom to top; each entry a top-level module or folder of ``vpcost_utils`` ("" is the package's ``__init__``).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base: knows nothing of the science", ("_io", "errors", "paths", "names", "rehearsal_mode", "_moved", "cpu_pin")),
    ("ground: what every run uses", ("arithmetic", "allocator", "metrics", "stats", "config", "profiles", "grids",
                                     "checkpoint", "loop", "fetch", "hub")),
    ("registries: models and datasets by name", ("data", "models")),
    ("tasks: how a batch is built, stepped and evaluated", ("vp", "clip", "crossmodal", "probe")),
    ("models built here", ("built",)),
    ("running: run, store, sweep, preflight, plan; figures", ("running", "plots")),
    ("notebook support", ("nb",)),
    ("faces: studies, report, bench", ("studies", "report", "bench")),
    ("top: the rehearsal runner, the package itself", ("rehearsal", "")),
]


def _layer_of(module: str) -> int:
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else ""
    for i, (_, members) in enumerate(LAYERS):
        if head in members:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layering.py's LAYERS: give it one")


def test_every_import_points_down_the_layers():
    graph = _module_graph()
    up = sorted(f"{a} ({LAYERS[_layer_of(a)][0].split(':')[0]}) -> {b} ({LAYERS[_layer_of(b)][0].split(':')[0]})"
                for a, targets in graph.items() for b in targets if _layer_of(b) > _layer_of(a))
    assert up == [], "upward imports:\n" + "\n".join(up)


def test_no_two_modules_share_a_basename_and_the_top_level_is_small():
    names: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.stem not in ("__init__", "__main__"):
            names.setdefault(path.stem, []).append(str(path.relative_to(PACKAGE)))
    packages = {p.parent.name for p in PACKAGE.rglob("__init__.py")}
    shared = {n: p for n, p in names.items() if len(p) > 1 or n in packages}
    assert shared == {}, f"modules sharing a name (rename so each says what it holds): {shared}"
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(top) <= 20, f"{len(top)} modules at the top level: {top}"


def test_no_module_imports_a_path_of_before_the_move():
    from vpcost_utils._moved import MOVED

    old = {f"vpcost_utils.{name}" for name in MOVED}
    bad = {}
    for path in [*PACKAGE.rglob("*.py"), *Path(__file__).parent.glob("*.py")]:
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        package = ".".join(parts[:-1])
        used = _imported_modules(path.read_text(), package) & old
        if used:
            bad[str(path.relative_to(PACKAGE.parent))] = sorted(used)
    assert bad == {}, f"imports of moved modules (vpcost_utils/_moved.py says where each went): {bad}"


def test_old_command_paths_still_run(tmp_path):
    """``python -m vpcost_utils.plan`` (before the move) says where it went and runs it; an old import is the module."""
    import importlib
    import subprocess
    import sys

    import vpcost_utils.running.plan as new

    old = importlib.import_module("vpcost_utils.plan")  # by name: the test above refuses the old path in an import
    assert old is new and old.__spec__.name == "vpcost_utils.running.plan"
    out = subprocess.run([sys.executable, "-m", "vpcost_utils.plan", "--help"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "moved to vpcost_utils.running.plan" in out.stderr and "--profile" in out.stdout


def test_every_import_in_the_package_resolves_lazy_ones_included():
    """An import inside a function runs only when its path does: a moved module would break it silently (the bench's
    ``from .plan import ...`` did). Every ``from X import Y`` of the package names a module and a name that exist."""
    import importlib
    import importlib.util

    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        package = ".".join(parts if path.name == "__init__.py" else parts[:-1]).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if not (node.level or (node.module or "").startswith("vpcost_utils")):
                continue
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            try:
                found = importlib.import_module(module)
            except ImportError as exc:
                missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {module} ({exc})")
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            missing += [f"{where} {module}.{alias.name}" for alias in node.names
                        if alias.name != "*" and not hasattr(found, alias.name)
                        and importlib.util.find_spec(f"{module}.{alias.name}") is None]
    assert missing == [], "imports that do not resolve:\n" + "\n".join(missing)
