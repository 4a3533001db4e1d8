"""The layering of ../shared/STYLE.md: cli, serve -> ops -> indexer, analysis -> config, errors,
progress; inside indexer/, the areas of AREAS. Checked on the source (every import statement, in
functions and under TYPE_CHECKING too) and on the modules actually loaded (sys.modules in a fresh
interpreter), so a deferred import cannot hide a violation."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "idx"
HEAVY = ("torch", "open_clip", "faiss", "duckdb", "pyarrow")
BASE = ("idx.config", "idx.errors", "idx.progress")

#: part of the package -> what it must never import (by name, or anything below that name)
FORBIDDEN = {
    "analysis": {
        *("duckdb", "faiss", "open_clip", "torch", "click", "tqdm"),
        *("idx.indexer", "idx.ops", "idx.cli", "idx.serve", "idx.demo"),
    },
    "indexer": {"click", "tqdm", "idx.analysis", "idx.ops", "idx.cli", "idx.serve", "idx.demo"},
    "ops": {"click", "tqdm", "duckdb", "idx.cli", "idx.serve", "idx.demo"},
    # serve answers through ops: no SQL and no catalog of its own
    "serve": {"click", "tqdm", "duckdb", "idx.indexer.catalog", "idx.cli", "idx.demo"},
    "demo.py": {"click", "tqdm", "duckdb", "idx.cli", "idx.serve"},
    # the demo's and the tests' data builder: pictures only
    "synthetic.py": {"click", "tqdm", "idx.indexer", "idx.ops", "idx.cli", "idx.serve", "idx.demo"},
    "errors.py": {"idx", "click", "tqdm"},
    "progress.py": {"idx", "click", "tqdm"},
    "config.py": {"idx", "click", "tqdm"},
    # exact kNN, shared by analysis and indexer (neither may import the other): numpy only
    "knn.py": {"idx", "click", "tqdm", "faiss", "duckdb", "torch", "open_clip"},
}


#: inside indexer/: area -> the other areas it may import. `ingest` (the add pipeline) may use them
#: all; none of them imports `ingest` or the front door (FRONT_DOOR), which may import anything.
AREAS = {
    "files": set(),
    "vectors": set(),
    "catalog": {"files"},  # applies add's typed operations, which carry files.reader.Prepared
    "model": {"catalog"},  # precision records which precisions an index holds in its catalog
    "ingest": {"files", "model", "vectors", "catalog"},
}
#: indexer/'s modules outside the areas: `Index` and the commands it delegates to
FRONT_DOOR = {"index", "export", "status"}
FRONT_DOOR_FILES = "the front door (index.py, export.py, status.py)"


def _modules(part: str) -> list[Path]:
    return [SRC / part] if part.endswith(".py") else sorted((SRC / part).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = ["idx", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_sites(path: Path) -> list[tuple[str, int]]:
    """(module name, line) of each import in a file (for `from a import b`: a.b when that is a
    module); every statement, in functions and under TYPE_CHECKING too."""
    tree = ast.parse(path.read_text())
    sites: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            sites.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (SRC.parent / sub.replace(".", "/")).with_suffix(".py").exists() or (
                    SRC.parent / sub.replace(".", "/")
                ).is_dir()
                sites.append((sub if is_module else node.module, node.lineno))
    return sites


def _imports(path: Path) -> set[str]:
    """Module names imported by a file (see _import_sites)."""
    return {name for name, _ in _import_sites(path)}


def _banned(name: str, banned: set[str]) -> bool:
    return any(name == b or name.startswith(b + ".") for b in banned)


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_layer_imports_in_source(part):
    allowed = {"idx.errors", "idx.config", "idx.progress"}
    bad = [
        f"{f.relative_to(SRC)} imports {name}"
        for f in _modules(part)
        for name in _imports(f)
        if _banned(name, FORBIDDEN[part]) and name not in allowed
    ]
    assert bad == []


def test_duckdb_only_in_the_catalog_package():
    bad = [
        str(f.relative_to(SRC))
        for f in SRC.rglob("*.py")
        if "duckdb" in {n.split(".")[0] for n in _imports(f)}
        and f.relative_to(SRC).parts[:2] != ("indexer", "catalog")
    ]
    assert bad == []


def test_click_and_tqdm_only_in_cli():
    bad = [
        f"{f.relative_to(SRC)} imports {n}"
        for f in SRC.rglob("*.py")
        if f.relative_to(SRC).parts[0] != "cli"
        for n in _imports(f)
        if n.split(".")[0] in ("click", "tqdm")
    ]
    assert bad == []


def test_no_import_cycle():
    """No circle of idx modules, counting every import statement: one inside a function or under
    TYPE_CHECKING still ties the two modules together."""
    graph: dict[str, dict[str, str]] = {}
    for f in SRC.rglob("*.py"):
        edges = graph.setdefault(_module_name(f), {})
        for name, line in _import_sites(f):
            if name.startswith("idx.") and name not in edges:
                edges[name] = f"{f.relative_to(SRC)}:{line}"
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1 and nxt in path:
                loop = path[path.index(nxt) :] + [nxt]
                cycles.append(
                    "import circle: "
                    + ", ".join(f"{a} -> {b} ({graph[a][b]})" for a, b in zip(loop, loop[1:]))
                )
            elif nxt in graph and nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "\n".join(cycles)


def _indexer_part(module: str) -> str | None:
    """The area of an idx.indexer module ("files", ...), "front door", or None outside."""
    parts = module.split(".")
    if parts[:2] != ["idx", "indexer"] or len(parts) < 3:
        return None
    return parts[2] if parts[2] in AREAS else "front door" if parts[2] in FRONT_DOOR else parts[2]


def test_indexer_is_areas_and_a_front_door():
    """Every module under indexer/ belongs to an area of AREAS or is the front door."""
    loose = [
        str(f.relative_to(SRC))
        for f in (SRC / "indexer").iterdir()
        if f.name not in ("__init__.py", "__pycache__")
        and (f.stem if f.suffix == ".py" else f.name) not in {*AREAS, *FRONT_DOOR}
    ]
    assert loose == [], (
        f"{loose} stand loose in indexer/: put each in the area whose one job it does "
        f"({', '.join(AREAS)}), or, if Index delegates a command to it, add it to FRONT_DOOR"
    )


def test_indexer_areas_import_only_what_they_may():
    """Inside indexer/, an area imports only the areas AREAS allows it (any import statement)."""
    bad = []
    for area, allowed in AREAS.items():
        for f in _modules(f"indexer/{area}"):
            for name, line in _import_sites(f):
                other = _indexer_part(name)
                if other is None or other in (area, *allowed):
                    continue
                if other in ("ingest", "front door"):
                    what = "ingest (the add pipeline)" if other == "ingest" else FRONT_DOOR_FILES
                    rule = f"{area} must not import {what}; only ingest and Index use the areas"
                else:
                    rule = f"{area} may import only {sorted(allowed) or 'no other area'} (AREAS)"
                bad.append(
                    f"indexer/{f.relative_to(SRC / 'indexer')}:{line} imports {name}: {rule}"
                )
    assert bad == [], "\n".join(bad)


def _loaded_after(code: str) -> dict[str, list[str]]:
    """Run `code` in a fresh interpreter; the heavy and idx modules it left in sys.modules, and
    for each heavy library the idx module whose import statement first loaded it."""
    probe = textwrap.dedent(
        f"""
        import importlib.abc, json, sys
        HEAVY = {HEAVY!r}
        first = {{}}
        class Watch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                top = name.split(".")[0]
                if top in HEAVY and top not in first:
                    frame = sys._getframe(1)
                    while frame is not None:
                        mod = frame.f_globals.get("__name__", "")
                        if mod == "idx" or mod.startswith("idx."):
                            first[top] = mod
                            break
                        frame = frame.f_back
                return None
        sys.meta_path.insert(0, Watch())
        """
    )
    report = textwrap.dedent(
        """
        print(json.dumps({
            "heavy": sorted(m for m in HEAVY if m in sys.modules),
            "idx": sorted(m for m in sys.modules if m == "idx" or m.startswith("idx.")),
            "first": first,
        }))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe + textwrap.dedent(code) + report],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_idx_loads_nothing_heavy():
    loaded = _loaded_after("import idx, idx.errors, idx.config, idx.progress")
    assert loaded["heavy"] == []
    assert set(loaded["idx"]) <= {"idx", *BASE}


def test_idx_help_loads_nothing_heavy():
    loaded = _loaded_after(
        """
        from click.testing import CliRunner
        from idx.cli.main import cli
        result = CliRunner().invoke(cli, ["--help"])
        assert result.exit_code == 0, result.output
        """
    )
    assert loaded["heavy"] == []
    # the command modules only: each command loads what it runs when it runs
    beyond = [m for m in loaded["idx"] if m.split(".")[1:2] not in ([], ["cli"], ["jsonable"])]
    assert [m for m in beyond if m not in BASE] == []


def _import_all(part: str) -> str:
    names = [_module_name(f) for f in _modules(part)]
    return "import importlib\n" + "".join(f"importlib.import_module({n!r})\n" for n in names)


def test_analysis_loads_no_storage_model_or_cli():
    loaded = _loaded_after(_import_all("analysis"))
    assert [m for m in loaded["heavy"] if m != "pyarrow"] == []
    assert [m for m in loaded["idx"] if _banned(m, FORBIDDEN["analysis"])] == []


def test_indexer_loads_no_ops_analysis_or_cli():
    loaded = _loaded_after(_import_all("indexer"))
    assert [m for m in loaded["idx"] if _banned(m, FORBIDDEN["indexer"])] == []


@pytest.mark.parametrize("area", sorted(a for a in AREAS if a != "ingest"))
def test_indexer_areas_load_no_ingest_or_front_door(area):
    loaded = _loaded_after(_import_all(f"indexer/{area}"))
    bad = [m for m in loaded["idx"] if _indexer_part(m) in ("ingest", "front door")]
    assert bad == [], f"importing indexer/{area} loaded {bad}"


def test_ops_load_no_cli_and_duckdb_comes_from_the_catalog():
    loaded = _loaded_after(_import_all("ops"))
    assert [m for m in loaded["idx"] if _banned(m, FORBIDDEN["ops"])] == []
    assert loaded["first"]["duckdb"].startswith("idx.indexer.catalog")


def test_every_module_imports_and_duckdb_comes_from_the_catalog():
    code = _import_all("indexer") + _import_all("analysis") + _import_all("ops")
    code += _import_all("cli").replace("importlib.import_module('idx.cli.__main__')\n", "")
    loaded = _loaded_after(code)
    assert loaded["first"].get("duckdb", "idx.indexer.catalog").startswith("idx.indexer.catalog")
