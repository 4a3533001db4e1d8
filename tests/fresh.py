"""Run idx's CLI in a new interpreter and tell which heavy libraries it imported: how tests check
that a command starts without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def run_cli(args: list[str], env_extra: dict[str, str] | None = None) -> tuple[str, bool]:
    """(stdout of `idx ARGS`, whether torch was imported); the command must succeed."""
    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from idx.cli.main import cli\n"
        f"r = CliRunner().invoke(cli, {args!r})\n"
        "assert r.exit_code == 0, r.output\n"
        "print(json.dumps({'out': r.stdout, 'torch': 'torch' in sys.modules}))\n"
    )
    env = {**os.environ, **(env_extra or {})}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["out"], result["torch"]
