"""Lists that register something kept in step with what they register, each failure saying what
to add where: the analysis run kinds (`KINDS` in catalog/runs.py) with the migrations' run tables,
the code that asks for a kind and the commands that make one; the public API (`_LAZY` in
idx/__init__.py) with its modules, the names the README and docstrings import and the README.

(Derived rather than listed: the commands that take a count, tests/test_cli_contract.py `COUNTS`,
and the commands the README must name, tests/test_docs.py, both from the click group.)"""

from __future__ import annotations

import ast
import re
from importlib import import_module
from pathlib import Path

import idx
from idx.cli.main import cli
from idx.indexer.catalog.runs import KINDS, Runs

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "idx"
MIGRATIONS = SRC / "schemas" / "migrations"
RUNS_PY = "src/idx/indexer/catalog/runs.py"
INIT_PY = "src/idx/__init__.py"
README = ROOT / "README.md"


def _created(what: str) -> dict[str, str]:
    """Name -> the migration that creates it, for each CREATE TABLE or CREATE SEQUENCE."""
    found: dict[str, str] = {}
    for migration in sorted(MIGRATIONS.glob("*.sql")):
        pattern = rf"\bCREATE\s+{what}\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)"
        for name in re.findall(pattern, migration.read_text(), re.IGNORECASE):
            found.setdefault(name.lower(), migration.name)
    return found


def _kind_entry(kind: str, table: str | None = None) -> str:
    return (
        f'"{kind}": RunKind("{table or kind + "_runs"}", "idx <the command that makes one>", '
        '{"<table of its rows>": ("<their key columns>",)})'
    )


# -- analysis run kinds -----------------------------------------------------------------------


def test_every_run_table_of_the_migrations_has_a_kind():
    named = {kind.table for kind in KINDS.values()}
    missing = [
        f"migration {migration} creates {table}: add "
        f"{_kind_entry(table.removesuffix('_runs'), table)} to KINDS in {RUNS_PY}"
        for table, migration in _created("TABLE").items()
        if table.endswith("_runs") and table not in named
    ]
    assert not missing, "\n".join(missing)


def test_every_kind_has_its_table_and_id_sequence():
    tables, sequences = _created("TABLE"), _created("SEQUENCE")
    bad = []
    for kind, table in ((k, v.table) for k, v in KINDS.items()):
        if table not in tables:
            bad.append(
                f"KINDS[{kind!r}] in {RUNS_PY} names the table {table}, which no migration "
                "creates: create it in a new src/idx/schemas/migrations/NNNN_<name>.sql"
            )
        elif f"{table}_id_seq" not in sequences:
            bad.append(
                f"runs.create draws {kind} run ids from {table}_id_seq: add `CREATE SEQUENCE "
                f"{table}_id_seq START 1;` before CREATE TABLE {table} in {tables[table]}"
            )
    assert not bad, "\n".join(bad)


def _commands(group, prefix: tuple[str, ...] = ("idx",)):
    for name, cmd in group.commands.items():
        yield " ".join((*prefix, name))
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))


def test_every_kind_names_a_command_that_makes_one():
    commands = set(_commands(cli))
    bad = [
        f"KINDS[{kind!r}] in {RUNS_PY} tells people to run `{command}`, which is not a command: "
        f"name the command that makes {kind} runs (one of: {', '.join(sorted(commands))})"
        for kind, command in ((k, v.command) for k, v in KINDS.items())
        if command.split(" -")[0] not in commands  # `idx duplicates --across A B`: its options
    ]
    assert not bad, "\n".join(bad)


#: The Runs methods that take a kind as their first argument.
KIND_METHODS = {
    name
    for name, fn in vars(Runs).items()
    if callable(fn) and fn.__code__.co_varnames[1:2] == ("kind",)
}


def _kinds_asked_for() -> list[tuple[str, str]]:
    """(where, kind) of each `....runs.<method>("kind", ...)` call in the package."""
    asked = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver = node.func.value
            on_runs = (isinstance(receiver, ast.Attribute) and receiver.attr == "runs") or (
                isinstance(receiver, ast.Name) and receiver.id == "runs"
            )
            first = node.args[0] if node.args else None
            if on_runs and node.func.attr in KIND_METHODS and isinstance(first, ast.Constant):
                asked.append((f"{path.relative_to(ROOT)}:{node.lineno}", first.value))
    return asked


def test_every_kind_asked_for_is_registered():
    asked = _kinds_asked_for()
    assert {"cluster", "insight", "injection"} <= {kind for _, kind in asked}  # the scan finds them
    bad = [
        f"{where} asks the catalog's runs for kind {kind!r}: add {_kind_entry(kind)} to KINDS in "
        f"{RUNS_PY} (and its table, in a migration)"
        for where, kind in asked
        if kind not in KINDS
    ]
    assert not bad, "\n".join(bad)


# -- the public API ---------------------------------------------------------------------------


def test_every_public_name_resolves():
    bad = []
    for name, (module, attribute) in idx._LAZY.items():
        try:
            getattr(import_module(module), attribute)
        except (ImportError, AttributeError):
            bad.append(
                f"_LAZY[{name!r}] in {INIT_PY} points at {module}.{attribute}, which does not "
                f"exist: point it at the module that defines {name}"
            )
    assert not bad, "\n".join(bad)


def _modules() -> set[str]:
    return {p.stem for p in SRC.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}


def _imported_from_idx() -> list[tuple[str, str]]:
    """(where, name) of each name that README.md or a docstring example takes from `idx`:
    `from idx import a, b` and `idx.a` (idx's modules left out)."""
    texts = [(README, README.read_text())]
    texts += [(path, path.read_text()) for path in sorted(SRC.rglob("*.py"))]
    modules = _modules()
    found = []
    for path, text in texts:
        for number, line in enumerate(text.splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{number}"
            names = re.findall(r"(?<![\w./-])idx\.(\w+)", line)
            given = re.match(r"\s*(?:>>>\s*)?from idx import ([\w, ]+)", line)
            names += [n.strip() for n in given.group(1).split(",")] if given else []
            found += [(where, n) for n in names if n and n not in modules]
    return found


def test_every_name_taken_from_idx_is_public():
    public = {*idx._LAZY, *vars(idx)}
    taken = _imported_from_idx()
    assert {"Index", "cluster", "measure_robustness"} <= {n for _, n in taken}  # the scan works
    bad = [
        f"{where} takes {name} from idx, which idx does not export: add "
        f'"{name}": ("<the module that defines it>", "{name}") to _LAZY in {INIT_PY}'
        for where, name in taken
        if name not in public
    ]
    assert not bad, "\n".join(bad)


def test_every_public_name_is_in_the_readme():
    readme = README.read_text()
    missing = [
        f"{name} is public (_LAZY in {INIT_PY}) but README.md never names it: show it in the "
        "Python API part of its command's section"
        for name in idx._LAZY
        if not re.search(rf"\b{name}\b", readme)
    ]
    assert not missing, "\n".join(missing)
