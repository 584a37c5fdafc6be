"""Claims about the project's import structure (read from the source with ast, nothing imported).

Layers, top to bottom: simulations → server, clients → methods → protos. An import may
only point down (server and clients never import each other), no module takes part in
an import cycle, and function-local imports count: hiding an import inside a function
moves when it runs, not what depends on what. methods/ never imports opacus or Flower's
server strategies; clients/privacy.py is the only module that imports opacus.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LAYER = {"protos": 1, "methods": 2, "server": 3, "clients": 3, "simulations": 4}
METHODS_MUST_NOT_IMPORT = ("opacus", "flwr.serverapp.strategy", "flwr.server.strategy")


def project_modules() -> dict[str, Path]:
    """Dotted module name → file, for every .py file of the layered packages."""
    modules = {}
    for package in LAYER:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def imported_names(module: str, path: Path) -> list[tuple[str, int]]:
    """Every absolute name an import statement anywhere in the file names (with its line):
    `from a.b import c` names a.b and a.b.c; relative imports are resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            names += [(base, node.lineno)]
            names += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return names


def import_graph(modules: dict[str, Path]) -> dict[str, dict[str, int]]:
    """module → {project module it imports: line of the first such import}."""
    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = defaultdict(dict)
    for module, path in modules.items():
        for name, line in imported_names(module, path):
            target = resolve(name)
            if target is not None and target != module:
                graph[module].setdefault(target, line)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph():
    return import_graph(project_modules())


def test_the_walker_counts_function_local_and_relative_imports(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("from . import sibling\nfrom ..other import thing\n"
                      "def f():\n    import hidden.module\n")
    names = {name for name, _ in imported_names("pkg.sub.mod", source)}
    assert {"pkg.sub.sibling", "pkg.other.thing", "hidden.module"} <= names
    local = import_graph(project_modules())["server.privacy_hooks"]  # imports inside methods
    assert "server.audit.phase" in local and "server.audit.accounting" in local


def test_the_cycle_finder_finds_a_cycle_through_three_modules():
    toy = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert cycles(toy) == [["a", "b", "c"]]


def test_no_module_takes_part_in_an_import_cycle(graph):
    assert cycles(graph) == []


def test_every_import_points_down_the_layers(graph):
    wrong = []
    for module, targets in graph.items():
        here = module.split(".")[0]
        for target, line in targets.items():
            there = target.split(".")[0]
            if here != there and LAYER[there] >= LAYER[here]:
                wrong.append(f"{module}:{line} imports {target}")
    assert wrong == []


def test_methods_never_import_opacus_or_flowers_server_strategies():
    wrong = [f"{module}:{line} imports {name}"
             for module, path in project_modules().items() if module.startswith("methods")
             for name, line in imported_names(module, path)
             if name.startswith(METHODS_MUST_NOT_IMPORT)]
    assert wrong == []


def test_clients_privacy_is_the_only_module_that_imports_opacus():
    importers = {module for module, path in project_modules().items()
                 for name, _ in imported_names(module, path)
                 if name == "opacus" or name.startswith("opacus.")}
    assert importers == {"clients.privacy"}


def test_a_users_method_needs_five_names_from_methods():
    import methods
    from methods import LocalTrainingConfig, Method, RunSpec, Stage, register
    from methods.base import Method as BaseMethod
    from methods.registry import register as registry_register

    assert sorted(methods.__all__) == ["LocalTrainingConfig", "Method", "RunSpec", "Stage",
                                       "register"]
    assert Method is BaseMethod and register is registry_register
    assert all(name in methods.__doc__ for name in methods.__all__)
    assert LocalTrainingConfig and RunSpec and Stage


# simulations/'s subpackages, bottom to top: an import between two of them points down.
# simulations/simulate.py (the in-process simulation) sits below all three: the CLI and
# the benchmarks both run it.
SIMULATIONS_LAYER = {"simulate": 0, "deploy": 1, "bench": 2, "cli": 3}


def test_simulations_subpackages_import_one_way(graph):
    def part(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if parts[0] == "simulations" and len(parts) > 1 else None

    assert {part(m) for m in project_modules()} - {None} == set(SIMULATIONS_LAYER)
    wrong = [f"{module}:{line} imports {target}"
             for module, targets in graph.items() if part(module)
             for target, line in targets.items()
             if part(target) and part(target) != part(module)
             and SIMULATIONS_LAYER[part(target)] >= SIMULATIONS_LAYER[part(module)]]
    assert wrong == []


def test_no_method_package_imports_another(graph):
    """What two methods share lives in methods/common/, not in one of them."""
    def package(module: str) -> str | None:
        parts = module.split(".")
        if parts[0] != "methods" or len(parts) < 2 or parts[1] == "common":
            return None
        return parts[1] if (ROOT / "methods" / parts[1]).is_dir() else None

    wrong = [f"{module}:{line} imports {target}"
             for module, targets in graph.items() if package(module)
             for target, line in targets.items()
             if package(target) and package(target) != package(module)]
    assert wrong == []
