"""Run idx's CLI in a new interpreter and tell which heavy libraries it imported: how tests check
that a command starts without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def run_cli(args: list[str], env_extra: dict[str, str] | None = None) -> tuple[str, bool]:
    """(stdout of `idx ARGS`, whether torch was imported); the command must succeed."""
    result = run_cli_result(args, env_extra)
    assert result["exit_code"] == 0, result["stderr"][-3000:]
    return result["out"], result["torch"]


def run_cli_result(args: list[str], env_extra: dict[str, str] | None = None) -> dict:
    """`idx ARGS` in a new interpreter: {"exit_code", "out", "stderr", "torch" (whether torch
    was imported), "modules" (every module imported), "towers" (the kinds of ONNX tower held
    open at the end)}, whether or not the command succeeded."""
    code = (
        "import sys, json\n"
        "from click.testing import CliRunner\n"
        "from idx.cli.main import cli\n"
        f"r = CliRunner().invoke(cli, {args!r})\n"
        "t = sys.modules.get('idx.indexer.model.towers')\n"
        "held = sorted(p.parent.name for p in t._LOADED) if t else []\n"
        "print(json.dumps({'exit_code': r.exit_code, 'out': r.stdout, 'stderr': r.stderr,\n"
        "                  'torch': 'torch' in sys.modules, 'modules': sorted(sys.modules),\n"
        "                  'towers': held}))\n"
    )
    env = {**os.environ, **(env_extra or {})}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_main(
    args: list[str], env_extra: dict[str, str] | None = None, *, slow_towers: bool = False
) -> subprocess.CompletedProcess:
    """`idx ARGS` through its real entry point in a new interpreter (its own stderr and logging,
    as a user sees them), the command must succeed. `slow_towers`: preparing an ONNX tower is
    estimated as slow as ViT-B-32's, so that the tiny model gets the note a real one does."""
    code = (
        "import sys\n"
        "from idx.indexer.model import towers\n"
        f"if {slow_towers}: towers.PARAMETERS_PER_SECOND = 1e3\n"
        "from idx.cli.main import main\n"
        "sys.argv = ['idx', *sys.argv[1:]]\n"
        "main()\n"
    )
    env = {**os.environ, **(env_extra or {})}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done
