"""The package's import graph keeps its layers (``docs/architecture.md``).

Every ``import`` of every module of ``oarsched/`` (also those inside functions;
not those under ``if TYPE_CHECKING:``, which never run) is an edge.  The graph
must have no cycle, SQLAlchemy (or another database driver) may only be
imported by the OAR adapter (``oarsched/oar/``), and each layer imports only
the layers the architecture allows.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import oarsched
from oarsched.model.job import strongly_connected

ROOT = Path(oarsched.__file__).parent
PACKAGE = "oarsched"

DATABASE_MODULES = ("sqlalchemy", "psycopg", "psycopg2", "sqlite3")
"""Only ``oarsched.oar`` talks to databases."""

LAYER_ALLOWS = {
    "errors": set(),
    "jsonfile": {"errors"},
    "_core": {"_core"},
    "model": {"model", "_core", "errors"},
    "quotas": {"quotas", "model", "errors"},
    "policies": {"policies", "model", "errors"},
    "plugins": {"plugins", "model", "_core", "errors"},
    "engine": {"engine", "model", "quotas", "_core", "policies", "plugins", "errors"},
    "oar": {"oar", "engine", "model", "quotas", "_core", "policies", "plugins", "errors", "jsonfile"},
    "sim": {"sim", "viz", "oar", "engine", "model", "quotas", "_core", "policies", "plugins", "errors", "jsonfile"},
    "viz": {"viz", "sim", "oar", "engine", "model", "errors", "jsonfile"},
    "cli": {"cli", "sim", "viz", "oar", "engine", "model", "quotas", "errors"},
    "": {"", "_core", "engine", "model", "quotas", "errors"},  # oarsched/__init__.py: the library facade
}
"""Layer -> the layers its modules may import (the layer of ``oarsched.X.y`` is ``X``)."""

COMPAT_SHIMS = {"oarsched.model.quotas": {"quotas"}}
"""Old import paths re-exporting a module that moved (and what they may import for that)."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
MODULES.update({module_name(p): p for p in sorted(ROOT.rglob("*.pyx"))})


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """Names of the modules ``tree`` imports at run time (absolute; ``from X import m`` gives ``X.m`` for a submodule)."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append(sub if sub in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _cython_imports(text: str, module: str) -> list[str]:
    """``cimport``/``import`` lines of a .pyx (Cython is not Python: read the lines); its own .pxd left out."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("import", "cimport"):
            out.append(words[1])
        elif len(words) >= 4 and words[0] == "from" and words[2] in ("import", "cimport"):
            out.append(words[1])
    return [m for m in out if m != module]


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules it imports (oarsched's and third-party)."""
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".pyx":
            graph[name] = set(_cython_imports(text, name))
        else:
            graph[name] = set(_imports(ast.parse(text, str(path)), name, path.name == "__init__.py"))
    return graph


GRAPH = import_graph()


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _internal(targets: set[str]) -> set[str]:
    return {t for t in targets if t == PACKAGE or t.startswith(PACKAGE + ".")}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself)."""
    edges = {v: sorted(_internal(targets) & graph.keys()) for v, targets in graph.items()}
    return sorted(sorted(c) for c in strongly_connected(edges) if len(c) > 1 or c[0] in edges[c[0]])


def test_the_graph_sees_the_package():
    assert {"oarsched.engine.round", "oarsched.oar.kamelot", "oarsched._core.slotset"} <= GRAPH.keys()
    assert "oarsched.engine.search" in GRAPH["oarsched.engine.round"]
    assert "oarsched.engine.plugin_runtime" in GRAPH["oarsched.engine.round"]  # imported inside a function
    assert "sqlalchemy" in GRAPH["oarsched.oar.db"]


def test_no_import_cycle():
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles():
    graph = {"oarsched.a": {"oarsched.b"}, "oarsched.b": {"oarsched.c"}, "oarsched.c": {"oarsched.a"},
             "oarsched.d": {"oarsched.a"}}
    assert cycles(graph) == [["oarsched.a", "oarsched.b", "oarsched.c"]]


def test_type_checking_imports_are_not_edges():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sqlalchemy\nimport numpy\n")
    assert _imports(tree, "oarsched.x", False) == ["typing", "numpy"]


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if layer(m) != "oar"))
def test_databases_only_in_the_oar_adapter(module: str):
    used = {t for t in GRAPH[module] if t.split(".")[0] in DATABASE_MODULES}
    assert not used, f"{module} imports {sorted(used)}: database access belongs in oarsched/oar/"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_layers_import_only_what_they_may(module: str):
    allowed = LAYER_ALLOWS[layer(module)] | COMPAT_SHIMS.get(module, set())
    wrong = sorted(t for t in _internal(GRAPH[module]) if t != PACKAGE and layer(t) not in allowed)
    assert not wrong, f"{module} (layer {layer(module) or 'oarsched'}) imports {wrong}"



def private_imports(sources: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """``(importer, module, name)`` for each ``from oarsched.X import _name`` between two modules of the package.

    A leading underscore says "this module's business": what another module
    needs gets a public name in the module that owns it.  Submodules (``_core``)
    and dunders (``__all__``) are not private names.  ``sources``: module ->
    its text (default: the package's modules).
    """
    if sources is None:
        sources = {m: p.read_text(encoding="utf-8") for m, p in MODULES.items() if p.suffix == ".py"}
    found = []
    for importer, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.ImportFrom) or node.level or not (node.module or "").startswith(PACKAGE):
                continue
            found.extend((importer, node.module, a.name) for a in node.names
                         if a.name.startswith("_") and not a.name.startswith("__")
                         and f"{node.module}.{a.name}" not in MODULES)
    return sorted(found)


def test_no_private_name_is_imported_from_another_module():
    # a name another module needs is part of its module's API: give it a public name
    assert private_imports() == []


def test_the_private_import_finder_finds_them():
    text = ("from oarsched.oar.kamelot import _fail, parse_now\nfrom oarsched import _core\n"
            "from oarsched.quotas import __all__\n\ndef f():\n    from oarsched.plugins.registry import _load\n")
    assert private_imports({"oarsched.x": text}) == [
        ("oarsched.x", "oarsched.oar.kamelot", "_fail"), ("oarsched.x", "oarsched.plugins.registry", "_load")]


def test_the_lazy_top_level_names_match_what_type_checkers_see():
    """``oarsched/__init__.py`` names its public names twice: ``_EXPORTS`` (imported on first use) and the
    ``TYPE_CHECKING`` imports (for type checkers); both lists, and the modules they come from, agree, and
    every name resolves."""
    import oarsched

    tree = ast.parse(MODULES["oarsched"].read_text(encoding="utf-8"))
    checked = next(n for n in tree.body if isinstance(n, ast.If) and _is_type_checking(n))
    typed = {a.name: node.module for node in checked.body if isinstance(node, ast.ImportFrom) for a in node.names}
    assert typed == oarsched._OWNER
    assert sorted(oarsched.__all__) == sorted(typed)
    assert [name for name in oarsched.__all__ if not hasattr(oarsched, name)] == []
