"""Every command is documented: --help works, shows an example, and the README names it."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from idx.cli.main import cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))


COMMANDS = sorted(_commands(cli), key=lambda c: c[0])


@pytest.mark.parametrize("path", [c[0] for c in COMMANDS], ids=" ".join)
def test_help_has_an_example(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"idx {' '.join(path)} --help shows no example"


@pytest.mark.parametrize("path", [c[0] for c in COMMANDS], ids=" ".join)
def test_readme_mentions_command(path):
    assert f"idx {' '.join(path)}" in README, f"README does not mention `idx {' '.join(path)}`"
