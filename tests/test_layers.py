"""The layering of ../shared/STYLE.md, checked on the source: cli -> api -> indexer, analysis."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "idx"

FORBIDDEN = {
    "analysis": {
        "duckdb",
        "faiss",
        "open_clip",
        "torch",
        "click",
        "tqdm",
        "idx.indexer",
        "idx.ops",
        "idx.cli",
    },
    "indexer": {"click", "tqdm", "idx.analysis", "idx.ops", "idx.cli"},
    "api": {"click", "tqdm", "idx.cli"},
    "errors.py": {"idx", "click"},
    "config.py": {"idx.indexer", "idx.analysis", "idx.ops", "idx.cli", "click"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _violations(part: str) -> list[str]:
    files = [SRC / part] if part.endswith(".py") else sorted((SRC / part).rglob("*.py"))
    bad = []
    for f in files:
        for name in _imports(f):
            for banned in FORBIDDEN[part]:
                if name == banned or name.startswith(banned + "."):
                    if part == "errors.py" and name.startswith("idx.errors"):
                        continue
                    bad.append(f"{f.relative_to(SRC)} imports {name}")
    return bad


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_layer_imports(part):
    assert _violations(part) == []


def test_click_and_tqdm_only_in_cli():
    bad = []
    for f in SRC.rglob("*.py"):
        if "cli" in f.relative_to(SRC).parts:
            continue
        bad += [
            f"{f.relative_to(SRC)} imports {n}"
            for n in _imports(f)
            if n.split(".")[0] in ("click", "tqdm")
        ]
    assert bad == []
