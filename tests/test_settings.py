"""IDX_* numbers from the environment: a bad value ends the command with exit 2 and a message that
names the variable, the value and what it must be; never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from idx import config
from idx.cli.main import cli
from idx.errors import UsageError


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize(
    "name, value, message",
    [
        (
            "BATCH_SIZE",
            "abc",
            "IDX_BATCH_SIZE='abc' is not a whole number >= 1; unset it or give e.g. 64",
        ),
        ("BATCH_SIZE", "0", "IDX_BATCH_SIZE='0' is not a whole number >= 1"),
        ("WORKERS", "2.5", "IDX_WORKERS='2.5' is not a whole number >= 1"),
        ("LOCK_WAIT", "x", "IDX_LOCK_WAIT='x' is not a number >= 0; unset it or give e.g. 30"),
        ("MAX_PIXELS", "-1", "IDX_MAX_PIXELS='-1' is not a whole number >= 1"),
    ],
)
def test_a_bad_number_in_the_environment_exits_2_naming_it(
    name, value, message, images, tiny_args, monkeypatch
):
    monkeypatch.setenv(f"IDX_{name}", value)
    result = run("add", images, *tiny_args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not isinstance(result.exception, ValueError)


def test_a_reading_command_exits_2_for_a_bad_lock_wait(indexed, monkeypatch):
    monkeypatch.setenv("IDX_LOCK_WAIT", "soon")
    result = run("--index", indexed, "status")
    assert result.exit_code == 2, result.output
    assert "IDX_LOCK_WAIT='soon' is not a number >= 0" in result.stderr


def test_no_traceback_in_a_new_process(indexed):
    env = {**os.environ, "IDX_LOCK_WAIT": "x", "IDX_INDEX": str(indexed)}
    out = subprocess.run(
        [sys.executable, "-m", "idx", "status"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip() == (
        "error: IDX_LOCK_WAIT='x' is not a number >= 0; unset it or give e.g. 30"
    )


#: Every numeric setting: (its reader in config, a value it refuses, one it takes and what it gives).
SETTINGS = [
    ("batch_size", "BATCH_SIZE", "-3", "7", 7),
    ("workers", "WORKERS", "0", "3", 3),
    ("max_upload", "MAX_UPLOAD", "20MB", "1000", 1000),
    ("sql_max_rows", "SQL_MAX_ROWS", "0", "10", 10),
    ("sql_timeout", "SQL_TIMEOUT", "0", "0.5", 0.5),
    ("index_workers", "INDEX_WORKERS", "many", "2", 2),
    ("ivf_ram_limit", "IVF_RAM_MB", "-1", "0", 0.0),
    ("lock_wait", "LOCK_WAIT", "nan", "0", 0.0),
    ("ray_actors", "RAY_ACTORS", "1.0", "2", 2),
    ("max_pixels", "MAX_PIXELS", "1e6", "1000000", 1_000_000),
]


@pytest.mark.parametrize("read, name, bad, good, value", SETTINGS, ids=[s[1] for s in SETTINGS])
def test_every_numeric_setting_is_checked(read, name, bad, good, value, monkeypatch):
    read = getattr(config, read)
    monkeypatch.setenv(f"IDX_{name}", bad)
    with pytest.raises(UsageError, match=f"^IDX_{name}='{bad}' is not a .*; unset it or give e.g"):
        read()
    monkeypatch.setenv(f"IDX_{name}", good)
    assert read() == value
    assert type(read()) is type(value)
