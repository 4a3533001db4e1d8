"""The layering of ../shared/STYLE.md: cli, serve -> ops -> indexer, analysis -> config, errors,
progress. Checked on the source (every import statement) and on the modules actually loaded
(sys.modules in a fresh interpreter), so a deferred import cannot hide a violation."""

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
    "errors.py": {"idx", "click", "tqdm"},
    "progress.py": {"idx", "click", "tqdm"},
    "config.py": {"idx", "click", "tqdm"},
}


def _modules(part: str) -> list[Path]:
    return [SRC / part] if part.endswith(".py") else sorted((SRC / part).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = ["idx", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Module names imported by a file (for `from a import b`: a.b when that is a module)."""
    tree = ast.parse(path.read_text())
    nodes = _top_level(tree.body) if top_level_only else ast.walk(tree)
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (SRC.parent / sub.replace(".", "/")).with_suffix(".py").exists() or (
                    SRC.parent / sub.replace(".", "/")
                ).is_dir()
                names.add(sub if is_module else node.module)
    return names


def _top_level(body: list[ast.stmt]):
    """Statements run at import time: not in functions, not under `if TYPE_CHECKING`."""
    for node in body:
        if isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            yield from _top_level(node.body)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node


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
    graph = {
        _module_name(f): {
            n for n in _imports(f, top_level_only=True) if n == "idx" or n.startswith("idx.")
        }
        for f in SRC.rglob("*.py")
    }
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif nxt in graph and nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


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


def test_ops_load_no_cli_and_duckdb_comes_from_the_catalog():
    loaded = _loaded_after(_import_all("ops"))
    assert [m for m in loaded["idx"] if _banned(m, FORBIDDEN["ops"])] == []
    assert loaded["first"]["duckdb"].startswith("idx.indexer.catalog")


def test_every_module_imports_and_duckdb_comes_from_the_catalog():
    code = _import_all("indexer") + _import_all("analysis") + _import_all("ops")
    code += _import_all("cli").replace("importlib.import_module('idx.cli.__main__')\n", "")
    loaded = _loaded_after(code)
    assert loaded["first"].get("duckdb", "idx.indexer.catalog").startswith("idx.indexer.catalog")
