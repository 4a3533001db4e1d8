"""IDX_* numbers from the environment: a bad value ends the command with exit 2 and a message that
names the variable, the value and what it must be; never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from idx import config
from idx.cli.main import cli
from idx.errors import UsageError
from idx.indexer.index import Index
from idx.indexer.ingest.settings import RunSettings
from idx.indexer.model.identity import ModelSpec, identify, tiny_config_path


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


#: Every setting one `add` run resolves from the environment (RunSettings).
RUN_ENV = ("DEVICE", "PRECISION", "BATCH_SIZE", "WORKERS", "ENGINE", "DECODE")


def _settings(**flags):
    return RunSettings.resolve(**flags).for_kind("cpu")


def test_run_settings_take_the_flag_then_the_environment_then_the_default(monkeypatch):
    for name in RUN_ENV:
        monkeypatch.delenv(f"IDX_{name}", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    fields = ("device", "precision", "batch_size", "workers", "engine", "ray_address")

    def picked(settings):
        return tuple(getattr(settings, name) for name in fields)

    cores = os.cpu_count() or 2
    assert picked(_settings()) == ("auto", "fp32", 64, min(4, cores + 1), "local", None)
    assert _settings().decode_processes is False
    for name, value in zip(RUN_ENV, ("cuda:1", "fp32", "7", "3", "ray", "processes")):
        monkeypatch.setenv(f"IDX_{name}", value)
    monkeypatch.setenv("RAY_ADDRESS", "ray://env:10001")
    assert picked(_settings()) == ("cuda:1", "fp32", 7, 3, "ray", "ray://env:10001")
    flags = dict(device="cpu", precision="int8", batch_size=5, workers=2, engine="local")
    assert picked(_settings(**flags, ray_address="ray://flag:1")) == (
        *flags.values(),
        "ray://flag:1",
    )
    # add's keywords go in front of settings already resolved
    resolved = RunSettings.resolve(**flags)
    assert resolved.with_flags(workers=6, engine="ray").for_kind("cpu").sizes() == (5, 6, False)
    # the batch size and workers nobody asked for are the device kind's
    monkeypatch.delenv("IDX_BATCH_SIZE")
    assert RunSettings.resolve().for_kind("cuda").batch_size == config.BATCH_SIZES["cuda"]


def test_run_settings_take_the_model_asked_then_the_stored_one_then_the_default(
    tiny_checkpoint, monkeypatch, tmp_path
):
    stored = identify(ModelSpec(str(tiny_config_path()), checkpoint=str(tiny_checkpoint)))
    moved, named = tmp_path / "moved.safetensors", tmp_path / "named.safetensors"
    shutil.copy(tiny_checkpoint, moved)
    shutil.copy(tiny_checkpoint, named)
    default = RunSettings.resolve().model_identity(None, tmp_path)
    assert (default.name, default.pretrained) == (config.DEFAULT_MODEL, config.DEFAULT_PRETRAINED)
    assert RunSettings.resolve().model_identity(stored, tmp_path) == stored
    monkeypatch.setenv("IDX_CHECKPOINT", str(moved))  # the same weights, moved
    assert RunSettings.resolve().model_identity(stored, tmp_path).checkpoint == str(moved)
    flag = RunSettings.resolve(checkpoint=named)
    assert flag.model_identity(stored, tmp_path).checkpoint == str(named)


def test_a_run_refuses_settings_that_place_the_model_elsewhere(images, tiny_model):
    with Index(**tiny_model, device="cpu") as index:
        with pytest.raises(UsageError, match="open the Index with those settings"):
            index.add([images], settings=RunSettings.resolve(**tiny_model, device="auto"))
    with pytest.raises(UsageError, match="not both"):
        Index(settings=RunSettings.resolve(), device="cpu")
