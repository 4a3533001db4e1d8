"""Every Python example in a docstring runs as a doctest, against the tiny model.

The examples find what they name: in the working directory and HOME (a fresh folder for each
module), a `photos` folder (the synthetic set) to add; as the CLI's index (IDX_INDEX, what `Index(read_only=True)` opens) a copy
of the synthetic index with folder labels, a map and 4 clusters; IDX_MODEL and IDX_CHECKPOINT
naming the tiny model; and as globals the arrays the analysis examples take: `X` / `x` (unit
vectors of the labelled images), `y` (their boolean label matrix), `primary` (each one's label)
and `assignments` (each one's cluster). README.md's ```python blocks run as scripts in
tests/test_docs.py (test_readme_examples_run_as_written)."""

from __future__ import annotations

import doctest
import shutil
from importlib import import_module
from pathlib import Path

import pytest

from tests.serving import prepare_index

SRC = Path(__file__).resolve().parents[1] / "src"
#: Every module with an example in a docstring.
MODULES = sorted(
    ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
    for path in (SRC / "idx").rglob("*.py")
    if ">>>" in path.read_text()
)


@pytest.fixture(scope="module")
def world(tmp_path_factory, indexed, tiny_model) -> dict:
    from idx.indexer.index import Index
    from idx.ops.insights.labelled import load_labelled
    from idx.ops.insights.measure import cluster_assignments

    index_dir = prepare_index(indexed, tmp_path_factory.mktemp("doctest") / "index", tiny_model)
    with Index(index_dir, read_only=True) as index:
        data = load_labelled(index)
        clusters = cluster_assignments(index, index.catalog.runs.latest("cluster"), data.ids)
    globs = {"X": data.vectors, "x": data.vectors, "y": data.y, "primary": data.primary}
    return {"index": index_dir, "globs": globs | {"assignments": clusters}}


def test_every_module_with_examples_is_found():
    assert {"idx", "idx.ops.search", "idx.analysis.insights", "idx.knn"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_as_doctests(
    module, world, synthetic_set, tiny_model, tmp_path, monkeypatch
):
    shutil.copytree(synthetic_set, tmp_path / "photos")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("IDX_INDEX", str(world["index"]))
    monkeypatch.setenv("IDX_MODEL", tiny_model["model"])
    monkeypatch.setenv("IDX_CHECKPOINT", tiny_model["checkpoint"])
    monkeypatch.setenv("MPLBACKEND", "Agg")
    tests = doctest.DocTestFinder().find(import_module(module), extraglobs=world["globs"])
    tests = [t for t in tests if t.examples]
    assert tests, f"{module} has no docstring example any more: drop it from the search"
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
