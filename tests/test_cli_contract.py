"""One CLI contract: every command prints table, csv or json (--json = --format json), -k and --k
name every count, the command modules do not import each other, and the demo is a library call."""

from __future__ import annotations

import ast
import csv
import io
import json
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from idx.cli.main import cli

CLI_DIR = Path(__file__).resolve().parents[1] / "src" / "idx" / "cli"
#: Modules every command module may import; main.py imports the command modules to register them.
#: Below cli/views/ too: how each command prints its result, shared with `idx runs show`.
SHARED = {"idx.cli.options", "idx.cli.output", "idx.cli.progress"}
#: Commands whose --format names the file they write, not what they print (that is --json).
FILE_FORMAT = {("export",): ("parquet", "npy")}
#: An example value for a count (-k) that is not a whole number, by its metavar.
COUNT_EXAMPLES = {"A:B": "2:4"}
#: Commands that print one line (or one JSON object), not rows: no CSV to offer.
NO_ROWS = {("serve",): ("table", "json")}


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))


COMMANDS = dict(sorted(_commands(cli)))
#: Commands that print results: every leaf, and the groups that also run on their own.
PRINTING = {
    path: cmd
    for path, cmd in COMMANDS.items()
    if not isinstance(cmd, click.Group) or cmd.invoke_without_command
}


def _option(cmd: click.Command, flag: str) -> click.Option | None:
    return next((p for p in cmd.params if flag in getattr(p, "opts", [])), None)


#: Where a count of neighbours or clusters is asked for (-k or --k): command -> its option.
COUNTS = {
    path: option
    for path, cmd in COMMANDS.items()
    if (option := _option(cmd, "-k") or _option(cmd, "--k")) is not None
}


def _count_example(path: tuple[str, ...]) -> str:
    """A value to give a command's count: 3 for a whole number, else COUNT_EXAMPLES'."""
    option = COUNTS[path]
    if isinstance(option.type, click.types.IntParamType):
        return "3"
    if option.metavar not in COUNT_EXAMPLES:
        pytest.fail(
            f"idx {' '.join(path)} -k takes {option.type.name} {option.metavar or ''}: add an "
            "example value for its metavar to COUNT_EXAMPLES in tests/test_cli_contract.py"
        )
    return COUNT_EXAMPLES[option.metavar]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("path", sorted(PRINTING), ids=" ".join)
def test_every_command_has_format_and_json(path):
    cmd = PRINTING[path]
    fmt, as_json = _option(cmd, "--format"), _option(cmd, "--json")
    assert as_json is not None and as_json.is_flag, f"idx {' '.join(path)} has no --json flag"
    assert fmt is not None and isinstance(fmt.type, click.Choice), f"idx {' '.join(path)}"
    expected = FILE_FORMAT.get(path, ("table", "csv", "json"))
    if path in NO_ROWS:
        assert tuple(fmt.type.choices) == NO_ROWS[path]
    else:
        assert set(expected) <= set(fmt.type.choices), (path, fmt.type.choices)
    help_text = run(*path, "--help").output
    assert "Example" in help_text and "--json" in help_text


def test_every_count_is_spelled_k_and_dash_dash_k():
    assert {("search",), ("cluster",), ("sweep",)} <= set(COUNTS)  # the derivation finds them
    for path in COUNTS:
        short, long = _option(COMMANDS[path], "-k"), _option(COMMANDS[path], "--k")
        assert short is long is not None, (
            f"idx {' '.join(path)}: -k and --k are not one option; declare the count with "
            "count_option (src/idx/cli/options.py)"
        )


@pytest.mark.parametrize("path", sorted(COUNTS), ids=" ".join)
def test_k_and_dash_dash_k_parse_alike(path):
    cmd, value = COMMANDS[path], _count_example(path)
    parsed = [
        cmd.make_context(path[-1], [spelling, value], resilient_parsing=True).params
        for spelling in ("-k", "--k")
    ]
    name = _option(cmd, "-k").name
    assert parsed[0][name] == parsed[1][name] == (value if ":" in value else int(value))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_command_module_imports_another():
    modules = {f"idx.cli.{f.stem}" for f in CLI_DIR.glob("*.py")}
    commands = modules - SHARED - {"idx.cli.main", "idx.cli.__init__"}
    bad = [
        f"{f.relative_to(CLI_DIR)} imports {name}"
        for f in sorted(CLI_DIR.rglob("*.py"))
        if f.stem != "main"
        for name in _imports(f) & commands
    ]
    assert bad == []


def test_json_is_format_json(indexed):
    for args in (["status"], ["sql", "SELECT id, path FROM images ORDER BY id LIMIT 3"]):
        as_json = run("--index", indexed, *args, "--json")
        as_format = run("--index", indexed, *args, "--format", "json")
        assert as_json.exit_code == as_format.exit_code == 0, as_json.output
        assert as_json.stdout == as_format.stdout
        json.loads(as_json.stdout)
    hits = run("--index", indexed, "search", "--id", "1", "--k", "2", "--json")
    assert [h["rank"] for h in json.loads(hits.stdout)] == [1, 2]
    both = run("--index", indexed, "status", "--json", "--format", "csv")
    assert both.exit_code == 2 and "--json means --format json" in both.stderr


def test_serve_offers_no_csv_before_it_starts():
    """`idx serve` prints one start line (or --json object): --format csv is refused at once,
    no server started."""
    refused = run("serve", "--format", "csv")
    assert refused.exit_code == 2 and "'csv' is not one of 'table', 'json'" in refused.stderr
    assert "an aligned table (default) or JSON" in run("serve", "--help").output


def test_csv_parses_as_rows_or_key_value(indexed_copy):
    status = run("--index", indexed_copy, "status", "--format", "csv")
    assert status.exit_code == 0, status.output
    fields = dict(csv.reader(io.StringIO(status.stdout)))
    assert fields["key"] == "value" and fields["images"] == "48"
    assert fields["vectors.in_sync"] == "True"
    swept = run("--index", indexed_copy, "sweep", "-k", "2:3", "--format", "csv", "-q")
    assert swept.exit_code == 0, swept.output
    rows = list(csv.DictReader(io.StringIO(swept.stdout)))
    assert [r["k"] for r in rows] == ["2", "3"] and "silhouette" in rows[0]
    graph = run("--index", indexed_copy, "neighbors", "--all", "-k", "2", "--format", "csv")
    assert [r["rows"] for r in csv.DictReader(io.StringIO(graph.stdout))] == ["96"]


def test_jsonl_streams_one_object_per_row(indexed):
    result = run("--index", indexed, "neighbors", "3", "--k", "4", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4] and all(r["id"] != 3 for r in rows)


def test_export_reads_the_format_from_the_name(indexed, tmp_path):
    parquet = run("--index", indexed, "export", tmp_path / "e.parquet", "--json")
    assert parquet.exit_code == 0, parquet.output
    assert json.loads(parquet.stdout)["format"] == "parquet"
    folder = run("--index", indexed, "export", f"{tmp_path / 'emb'}/")
    assert folder.exit_code == 0 and (tmp_path / "emb" / "embeddings.npy").is_file()
    unknown = run("--index", indexed, "export", tmp_path / "e.xyz")
    assert unknown.exit_code == 2 and unknown.stdout == ""
    assert "e.xyz" in unknown.stderr and "--format parquet" in unknown.stderr


def test_demo_is_a_library_call_whose_model_flags_reuse_its_model(tmp_path):
    from idx.demo import run_demo

    messages: list[str] = []
    summary = run_demo(tmp_path / "demo", per_category=3, tiny=True, on_message=messages.append)
    assert summary["untrained"] and summary["cluster"]["k"] == 8
    assert summary["add"]["added"] == 24 and summary["labels"]["imported"] == 24
    assert summary["reuse"].startswith("--model idx-tiny --checkpoint ")
    assert any(m.startswith("demo: report written to") for m in messages)
    other = tmp_path / "other"
    images = Path(summary["images_dir"]) / "sunsets"
    added = run("--index", other, "add", images, *shlex.split(summary["reuse"]), "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["model"] == summary["model"]
    _try_lines_change_the_images_last(summary)


def _try_lines_change_the_images_last(summary: dict) -> None:
    """Run in order, the demo's `try:` lines look at its own images until the last ones, which
    inject corrupted copies, compare the clusters with and without them, and eject them again."""
    lines = [shlex.split(line) for line in summary["next"]]
    assert all(line[:2] == ["idx", "--index"] for line in lines)
    commands = [line[3:] for line in lines]  # after `idx --index DIR`
    changing = [i for i, c in enumerate(commands) if c[:2] in (["robustness", "inject"], ["add"])]
    assert changing == [len(commands) - 3], commands
    assert [c[:2] for c in commands[-2:]] == [["robustness", "compare"], ["robustness", "eject"]]
    index = lines[0][2]
    before = run("--index", index, "sql", "SELECT count(*) FROM images", "--format", "csv")
    for command in commands[-3:]:
        result = run("--index", index, *command)
        assert result.exit_code == 0, (command, result.output)
    after = run("--index", index, "sql", "SELECT count(*) FROM images", "--format", "csv")
    assert before.stdout == after.stdout
