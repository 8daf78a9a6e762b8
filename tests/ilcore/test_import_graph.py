"""No import cycles among ilcore's modules, nor among its packages.

A cycle makes the result depend on which module is imported first (a name may not exist yet when
the other module reads it) and ties two modules so that neither can change alone. The graph has
an edge A -> B when A imports B at module level (statements run on import: top level, ``if`` and
``try`` blocks, class bodies; not ``if TYPE_CHECKING:``, which never runs). Importing ``a.b.c``
also runs the packages ``a`` and ``a.b``, so those are edges too, except a module's own enclosing
packages (a submodule importing its siblings through its package's ``__init__`` is how packages
are built, not a cycle).

Module-level cycles break imports; the cycles the code review found were of the other two kinds,
so they are checked as well: imports inside functions (``ilcore/cli/lfo.py`` importing
``ilcore/cli/train.py`` while ``train`` imports ``lfo``: no crash, but neither module can move
alone) and cycles between ilcore's packages (``ilcore.experts`` importing ``ilcore.algos`` while
``ilcore.algos`` imports ``ilcore.experts``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import ilcore

ROOT = Path(ilcore.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(body: list[ast.stmt], *, in_functions: bool) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module is imported (``in_functions``: and those that
    run when its functions are called)."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                found += _imports(node.body, in_functions=in_functions)
            found += _imports(node.orelse, in_functions=in_functions)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                found += _imports(block, in_functions=in_functions)
        elif isinstance(node, (ast.With, ast.ClassDef, ast.For, ast.While)):
            found += _imports(node.body, in_functions=in_functions)
        elif in_functions and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += _imports(node.body, in_functions=in_functions)
    return found


def import_graph(*, in_functions: bool = False) -> dict[str, set[str]]:
    paths = {module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(paths)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path)).body, in_functions=in_functions):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
                continue
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets |= {f"{base}.{alias.name}" for alias in node.names}  # `from pkg import submodule`
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep in modules and dep != name and dep not in own_packages:
                    graph[name].add(dep)
    return graph


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph collapsed onto ilcore's subpackages and top-level modules (``ilcore.algos``,
    ``ilcore.cli``, ``ilcore.eval``, ...); the root package itself is left out."""
    def top(module: str) -> str:
        return ".".join(module.split(".")[:2])

    out: dict[str, set[str]] = {}
    for module, deps in graph.items():
        if module == ROOT.name:
            continue
        out.setdefault(top(module), set()).update(
            top(d) for d in deps if d != ROOT.name and top(d) != top(module))
    return out


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def test_the_graph_sees_the_imports():
    graph = import_graph()
    assert "ilcore.labelers.base" in graph["ilcore.algos.dagger.controller"]
    assert "ilcore.labelers" in graph["ilcore.algos.dagger.run"]
    assert "ilcore.cli.args" in graph["ilcore.cli.train"]


def test_a_cycle_is_found():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    lazy = import_graph(in_functions=True)
    assert "ilcore.algos.bc" in lazy["ilcore.cli.train"] and "ilcore.algos.bc" not in import_graph()["ilcore.cli.train"]


def test_ilcore_has_no_import_cycles():
    assert find_cycles(import_graph()) == []


def test_ilcore_has_no_import_cycles_through_function_imports():
    assert find_cycles(import_graph(in_functions=True)) == []


def test_ilcore_packages_import_each_other_one_way():
    assert find_cycles(package_graph(import_graph(in_functions=True))) == []
