"""The package's import graph: layers point down, no loops, no guarded imports of our own modules."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "tabresnet"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imported(name: str, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The package's modules an import statement (anywhere in ``name``) loads."""
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    else:
        if node.level:
            base = name.split(".")
            base = base[: len(base) - node.level + (1 if is_package(name) else 0)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module
                   for a in node.names]
    out = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            # Importing pkg.sub runs pkg first, unless the importer lives inside pkg.
            if candidate in MODULES and not (name + ".").startswith(candidate + "."):
                out.add(candidate)
    return out


@functools.cache
def graph() -> dict[str, set[str]]:
    edges = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges[name] = set().union(*(imported(name, n) for n in ast.walk(tree)
                                    if isinstance(n, (ast.Import, ast.ImportFrom))))
        edges[name].discard(name)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str]:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_walk_sees_the_imports():
    edges = graph()
    assert "tabresnet.models.layers" in edges["tabresnet.models.blocks"]
    assert "tabresnet.tuning" in edges["tabresnet.report.sections"]  # via tuning.results
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_loop():
    cycle = find_cycle(graph())
    assert not cycle, "import loop: " + " -> ".join(cycle)


LAYERS = ["models", "data", "training", "tuning"]


def test_layers_only_import_the_layers_below():
    for name, targets in graph().items():
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in LAYERS:
            continue
        allowed = LAYERS[: LAYERS.index(parts[1]) + 1]
        for target in targets:
            below = target.split(".")[1] if target.count(".") else ""
            # defaults, errors, metrics, artifact, calibrate, feature_importance (over
            # artifact and data) and rundir_lock sit beside the layers they serve.
            beside = {"defaults", "errors", "metrics", "artifact", "calibrate",
                      "feature_importance", "rundir_lock", ""}
            assert below in allowed or below in beside, (
                f"{name} imports {target}, a layer above it"
            )


def test_no_guarded_import_of_our_own_modules():
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Try):
                continue
            guards = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            if not guards & {"ImportError", "ModuleNotFoundError"}:
                continue
            for stmt in node.body:
                if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                    assert not imported(name, stmt), f"{name}: try-import of {ast.unparse(stmt)}"


def test_help_does_not_load_torch():
    """`tabresnet --help` and a command's help list every option without torch."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from tabresnet.cli import main\n"
        "for argv in (['--help'], ['fit', '--help'], ['tune', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('LOADED', sorted(m for m in ('torch', 'lightning', 'optuna', 'pandas')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--activation NAME" in out.stdout and "One of: relu" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "LOADED []"


@functools.cache
def third_party(path: Path) -> set[str]:
    """Top-level names of the other packages a module imports (anywhere in it)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out - {"tabresnet"}


def test_reading_a_run_does_not_load_lightning():
    """report, predict, evaluate, importance and export read a run without the training
    stack: Lightning's import alone is 4-5 s of a command's time."""
    edges = graph()
    for start in ("tabresnet.report", "tabresnet.artifact", "tabresnet.feature_importance",
                  "tabresnet.export"):
        seen, todo = set(), [start]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(edges[name])
        loaders = sorted(m for m in seen if "lightning" in third_party(MODULES[m]))
        assert not loaders, f"{start} loads lightning through {loaders}"
