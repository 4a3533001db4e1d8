"""ARCHITECTURE.md's map of indexer/ agrees with the code: its area table names every area of
tests/test_layers.py's AREAS, every module in each area, and what each area may import, so the
map a newcomer reads cannot drift from the tree or from the rules the layer test enforces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_layers import AREAS, SRC

DOC = Path(__file__).resolve().parents[1] / "ARCHITECTURE.md"


def _area_rows() -> dict[str, tuple[str, str]]:
    """area -> (what it owns, what it may import), from the table's `| `area/` | ... |` rows."""
    rows = {}
    for line in DOC.read_text().splitlines():
        match = re.match(r"\| `(\w+)/` \| (.*) \| (.*) \|$", line)
        if match:
            rows[match[1]] = (match[2], match[3])
    return rows


def _names(text: str) -> set[str]:
    """Every backticked name, and each dotted name's first part (`scan.Skip` names scan)."""
    return {name.split(".")[0] for name in re.findall(r"`([\w.]+)", text)}


def test_the_table_has_a_row_per_area():
    assert set(_area_rows()) == set(AREAS), (
        f"ARCHITECTURE.md's area table has rows for {sorted(_area_rows())}; AREAS in "
        f"tests/test_layers.py has {sorted(AREAS)}: give each area a row, and no other"
    )


@pytest.mark.parametrize("area", sorted(AREAS))
def test_each_row_names_every_module_of_its_area(area):
    owns, _ = _area_rows()[area]
    folder = SRC / "indexer" / area
    modules = {p.stem for p in folder.rglob("*.py") if p.stem != "__init__"}
    missing = sorted(modules - _names(owns))
    assert not missing, (
        f"ARCHITECTURE.md's `{area}/` row does not name {missing}: say in a few words what each "
        f"owns there (every module's docstring has its one job)"
    )


@pytest.mark.parametrize("area", sorted(AREAS))
def test_each_row_says_what_its_area_may_import(area):
    _, may_import = _area_rows()[area]
    said = set() if may_import == "nothing" else _names(may_import)
    assert said == AREAS[area], (
        f"ARCHITECTURE.md says `{area}/` may import {sorted(said) or 'nothing'}; AREAS in "
        f"tests/test_layers.py allows {sorted(AREAS[area]) or 'nothing'}: make them agree"
    )
