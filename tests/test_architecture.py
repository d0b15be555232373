"""The package's dependency structure, read from the source with ``ast`` (nothing is imported).

Every intra-package import is collected, at module level and inside functions:

- relative imports are resolved to absolute module names;
- ``from . import a`` where ``a`` is a submodule counts as importing that submodule;
- ``from .pkg import name`` counts as importing ``pkg`` (its ``__init__``) unless ``name``
  is itself a submodule of ``pkg``.

Three rules are checked: (a) no import cycles; (b) layering (a module imports only from its
own layer or the layers below it, see ``ALLOWED``); (c) no module imports a sibling module
from inside a function, except the torch-dependent ones, which may stay lazy.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "ensemble_synth"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE


# --- collecting imports ------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    importer: str  # absolute module name
    target: str  # absolute module name (a package means its __init__)
    file: str  # path relative to the repository root
    line: int
    in_function: bool
    statement: str  # the import as written, for messages
    names: tuple[str, ...] = ()  # for ``from X import names`` into a package's __init__

    def where(self) -> str:
        return f"{self.file}:{self.line}: {self.statement}"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _discover() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


MODULES = _discover()


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _resolve_base(importer: str, level: int, module: str | None) -> str:
    """The absolute name ``from <level dots><module>`` refers to inside ``importer``."""
    if level == 0:
        return module or ""
    package = importer if _is_package(importer) else importer.rpartition(".")[0]
    parts = package.split(".")
    if level - 1 > 0:
        parts = parts[: len(parts) - (level - 1)]
    base = ".".join(parts)
    return f"{base}.{module}" if module else base


def _statement(node: ast.AST, source: str) -> str:
    text = ast.get_source_segment(source, node) or ""
    return " ".join(text.split())


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, path: Path, source: str):
        self.module, self.source = module, source
        self.file = str(path.relative_to(PACKAGE_DIR.parent))
        self.depth = 0  # > 0 inside a function or lambda
        self.found: list[Import] = []

    def _function(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, node, target, names=()):
        if target == PACKAGE or target.startswith(PACKAGE + "."):
            # Fall back to the nearest enclosing module for a dotted name that is not a file.
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            self.found.append(Import(self.module, target, self.file, node.lineno, self.depth > 0,
                                     _statement(node, self.source), tuple(names)))

    def visit_Import(self, node: ast.Import):
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom):
        base = _resolve_base(self.module, node.level, node.module)
        if not (base == PACKAGE or base.startswith(PACKAGE + ".")):
            return
        into_package: list[str] = []
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if alias.name != "*" and sub in MODULES:
                self._add(node, sub)
            else:
                into_package.append(alias.name)
        if into_package:
            self._add(node, base, into_package)


def _collect() -> list[Import]:
    found: list[Import] = []
    for module, path in MODULES.items():
        source = path.read_text(encoding="utf-8")
        collector = _Collector(module, path, source)
        collector.visit(ast.parse(source, filename=str(path)))
        found.extend(collector.found)
    return found


IMPORTS = _collect()


def _graph() -> dict[str, dict[str, Import]]:
    graph: dict[str, dict[str, Import]] = {m: {} for m in MODULES}
    for imp in IMPORTS:
        if imp.target != imp.importer:
            graph[imp.importer].setdefault(imp.target, imp)
    return graph


def _find_cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """One cycle (as a closed path) per strongly connected component with a cycle (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)

    cycles = []
    for comp in components:
        members = set(comp)
        start = comp[0]
        # Breadth-first search inside the component for the shortest path back to start.
        previous: dict[str, str] = {}
        frontier = [start]
        seen = {start}
        closing = None
        while frontier and closing is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph[v]):
                    if w == start:
                        closing = v
                        break
                    if w in members and w not in seen:
                        seen.add(w)
                        previous[w] = v
                        nxt.append(w)
                if closing is not None:
                    break
            frontier = nxt
        path = [closing]
        while path[-1] != start:
            path.append(previous[path[-1]])
        path.reverse()
        cycles.append(path + [start])
    return cycles


# --- the collector itself ----------------------------------------------------------------


def test_collector_sees_the_whole_package():
    assert f"{PACKAGE}" in MODULES
    assert f"{PACKAGE}.music.performance" in MODULES
    assert f"{PACKAGE}.cli" in MODULES and _is_package(f"{PACKAGE}.cli")
    assert len(IMPORTS) > 50


def _collect_source(module: str, source: str) -> list[Import]:
    """Run the collector on ``source`` as if it were ``module``'s file."""
    collector = _Collector(module, MODULES[module], source)
    collector.visit(ast.parse(source))
    return collector.found


SAMPLE = """
import os
import numpy as np
from ..separation import train, evaluate
from .. import errors, _version
from ..music import instruments, not_a_module
from ..corpus.format import TrackEntry
import ensemble_synth.fileio
import ensemble_synth.acoustics.rooms as rooms
from . import group
from .group import cli
from ..separation import *


def run():
    import torch
    from ..separation.trainer import fit
    from ..evaluation import report


class Command:
    from ..presets import load_preset

    def method(self):
        f = lambda: None
        from ..versions import versions
"""


def test_collector_resolves_relative_imports():
    found = {(i.target, i.names, i.in_function) for i in _collect_source(f"{PACKAGE}.cli.train_cmds", SAMPLE)}
    p = PACKAGE
    assert found == {
        (f"{p}.separation", ("train", "evaluate"), False),  # names of separation/__init__, not submodules
        (f"{p}.errors", (), False),  # ``from .. import errors``: the submodule
        (f"{p}._version", (), False),
        (f"{p}.music.instruments", (), False),  # a submodule...
        (f"{p}.music", ("not_a_module",), False),  # ...and a name of music/__init__
        (f"{p}.corpus.format", ("TrackEntry",), False),
        (f"{p}.fileio", (), False),
        (f"{p}.acoustics.rooms", (), False),
        (f"{p}.cli.group", (), False),  # ``from . import group`` inside the cli package
        (f"{p}.cli.group", ("cli",), False),
        (f"{p}.separation", ("*",), False),
        (f"{p}.separation.trainer", ("fit",), True),
        (f"{p}.evaluation.report", (), True),
        (f"{p}.presets", ("load_preset",), False),  # a class body runs at import time
        (f"{p}.versions", ("versions",), True),
    }


def test_collector_resolves_imports_in_a_package_init():
    found = {i.target for i in _collect_source(f"{PACKAGE}.music", "from . import score\nfrom .repertoire import Piece\n")}
    assert found == {f"{PACKAGE}.music.score", f"{PACKAGE}.music.repertoire"}
    found = {i.target for i in _collect_source(PACKAGE, "from .corpus import format\nfrom .errors import UserError\n")}
    assert found == {f"{PACKAGE}.corpus.format", f"{PACKAGE}.errors"}


def test_collector_on_the_real_package():
    by_importer = {}
    for imp in IMPORTS:
        by_importer.setdefault(imp.importer, set()).add(imp.target)
    # performance.py: ``from .repertoire import ...`` and ``from .score import ...``
    assert {f"{PACKAGE}.music.repertoire", f"{PACKAGE}.music.score"} <= by_importer[f"{PACKAGE}.music.performance"]
    # repertoire.py: ``from ..errors import UserError``
    assert f"{PACKAGE}.errors" in by_importer[f"{PACKAGE}.music.repertoire"]


def test_cycle_finder_reports_a_path():
    def edges(pairs):
        g = {}
        for a, b in pairs:
            g.setdefault(a, {})[b] = None
            g.setdefault(b, {})
        return g

    assert _find_cycles(edges([("a", "b"), ("b", "c")])) == []
    assert _find_cycles(edges([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])) == [["a", "b", "c", "a"]]


# --- (a) no cycles -----------------------------------------------------------------------


def test_no_import_cycles():
    graph = _graph()
    cycles = _find_cycles(graph)
    lines = []
    for cycle in cycles:
        lines.append(" -> ".join(cycle))
        for a, b in zip(cycle, cycle[1:]):
            lines.append(f"    {graph[a][b].where()}")
    assert not cycles, "import cycles:\n" + "\n".join(lines)


# --- (b) layering ------------------------------------------------------------------------

# Added since the layering was written down: schema (preset key declarations; imports only
# distributions and errors) and workers (pool-worker lifetime; standard library only).
FOUNDATION = {f"{PACKAGE}.{m}" for m in ("errors", "_version", "fileio", "presets", "distributions", "versions",
                                         "schema", "workers")}

# Lowest first. synthesis and acoustics share a rank: neither may import the other.
LAYERS = ["foundation", "music", "synthesis", "acoustics", "corpus", "separation", "evaluation",
          "synth_vs_real", "cli"]

# Which layers each layer may import from (its own and the ones below it), spelled out.
ALLOWED = {
    "foundation": {"foundation"},
    "music": {"foundation", "music"},
    "synthesis": {"foundation", "music", "synthesis"},
    "acoustics": {"foundation", "music", "acoustics"},
    "corpus": {"foundation", "music", "synthesis", "acoustics", "corpus"},
    "separation": {"foundation", "music", "synthesis", "acoustics", "corpus", "separation"},
    "evaluation": {"foundation", "music", "synthesis", "acoustics", "corpus", "separation", "evaluation"},
    "synth_vs_real": {"foundation", "music", "synthesis", "acoustics", "corpus", "separation", "evaluation",
                      "synth_vs_real"},
    "cli": {"foundation", "music", "synthesis", "acoustics", "corpus", "separation", "evaluation",
            "synth_vs_real", "cli"},
}

FACADE = PACKAGE  # ensemble_synth/__init__.py: re-exports, exempt as an importer


def layer_of(module: str) -> str | None:
    if module == FACADE:
        return "facade"
    if module in FOUNDATION:
        return "foundation"
    rest = module[len(PACKAGE) + 1:]
    top = rest.split(".")[0]
    if rest in ("synth_vs_real", "adaptation"):  # the applications that use every stage
        return "synth_vs_real"
    if rest == "torch":  # ensemble_synth.torch: the corpus as a torch Dataset
        return "separation"
    if rest == "__main__":  # python -m ensemble_synth: the command line
        return "cli"
    if top in ("music", "synthesis", "acoustics", "corpus", "separation", "evaluation", "cli"):
        return top
    return None


def test_allowed_pairs_follow_the_layer_order():
    """ALLOWED is the ordered list, read downwards, less synthesis <-> acoustics."""
    assert set(ALLOWED) == set(LAYERS)
    for i, layer in enumerate(LAYERS):
        expected = set(LAYERS[: i + 1])
        if layer == "acoustics":
            expected.discard("synthesis")
        assert ALLOWED[layer] == expected, layer
    assert "acoustics" not in ALLOWED["synthesis"] and "synthesis" not in ALLOWED["acoustics"]


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in MODULES if layer_of(m) is None)
    assert not unplaced, f"modules outside every layer (add them to the layering): {unplaced}"


def test_layering():
    bad = []
    for imp in IMPORTS:
        source, target = layer_of(imp.importer), layer_of(imp.target)
        if source == "facade" or source is None or target is None:
            continue
        if target not in ALLOWED[source]:  # the facade is in no ALLOWED set: nothing may import it
            bad.append(f"{imp.where()}  ({source} -> {target})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


# --- (c) no lazy imports of sibling modules ----------------------------------------------

TORCH_MODULES = {f"{PACKAGE}.separation.{m}" for m in ("trainer", "inference", "model", "checkpoint", "losses",
                                                         "device")} | {f"{PACKAGE}.torch"}


def _separation_lazy_table() -> dict[str, str]:
    """``_LAZY`` of separation/__init__.py: name -> relative module, loaded on first use (with torch)."""
    tree = ast.parse(MODULES[f"{PACKAGE}.separation"].read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in targets):
            return ast.literal_eval(node.value)
    raise AssertionError("separation/__init__.py has no _LAZY table")


def _separation_lazy_names() -> set[str]:
    return set(_separation_lazy_table())


def test_torch_exceptions_are_real_torch_modules():
    assert TORCH_MODULES <= set(MODULES), sorted(TORCH_MODULES - set(MODULES))
    table = _separation_lazy_table()
    assert {"train", "load_separator", "Separator"} <= set(table)
    # Every lazy name comes from one of the torch-dependent modules.
    assert {f"{PACKAGE}.separation{rel}" for rel in table.values()} <= TORCH_MODULES


def _lazy_attribute_hooks() -> set[tuple[str, int]]:
    """(file, line) of imports inside module-level ``__getattr__`` (PEP 562 lazy attributes)."""
    spans = set()
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        spans.add((str(path.relative_to(PACKAGE_DIR.parent)), sub.lineno))
    return spans


def test_no_function_level_imports_of_sibling_modules():
    lazy_names = _separation_lazy_names()
    hooks = _lazy_attribute_hooks()
    bad = []
    for imp in IMPORTS:
        if not imp.in_function:
            continue
        if imp.target in TORCH_MODULES:
            continue
        if imp.target == f"{PACKAGE}.separation" and imp.names and set(imp.names) <= lazy_names:
            continue
        if (imp.file, imp.line) in hooks:  # a PEP 562 __getattr__ exists to load lazily
            continue
        bad.append(imp.where())
    assert not bad, "function-level imports of package modules (move them to module level):\n" + "\n".join(bad)
