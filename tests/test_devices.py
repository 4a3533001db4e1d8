"""Where the model runs (--device) and in which precision (--precision int8 on the CPU, trusted
only after it agrees with fp32 on the index's own images). GPU-only tests skip without a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from idx.cli.main import cli
from idx.errors import UsageError
from idx.indexer.index import Index
from idx.indexer.model import devices
from idx.indexer.model import encoder as encoder_module
from tests.fresh import run_cli_result

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
pytest.importorskip("onnxruntime", reason="pip install 'idx-clip[int8]'")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_auto_picks_what_is_there_and_a_missing_device_is_a_usage_error():
    auto = devices.resolve("auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert auto.kind == expected and auto.describe().endswith("(auto)")
    assert devices.resolve("cpu").names == ("cpu",)
    with pytest.raises(UsageError, match="not a device"):
        devices.resolve("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="available: cpu"):
            devices.resolve("cuda:0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_cli_refuses_a_missing_device_with_exit_2(images, tiny_args, tmp_path):
    result = run("--index", tmp_path / "index", "add", images, *tiny_args, "--device", "cuda")
    assert result.exit_code == 2
    assert "--device cuda is not available" in result.stderr and "available: cpu" in result.stderr
    assert not (tmp_path / "index").exists()
    auto = run("--index", tmp_path / "index", "add", images, *tiny_args, "--json")
    assert auto.exit_code == 0 and "device: cpu (auto)" in auto.stderr
    assert json.loads(auto.stdout)["device"] == "cpu (auto)"


def test_int8_means_the_cpu_and_a_gpu_named_with_it_is_refused_first(images, tiny_args, tmp_path):
    assert devices.for_precision("auto", "int8") == "cpu"  # on any machine: int8 is CPU only
    assert devices.for_precision("auto", "fp32") == "auto"
    for device in ("cuda", "cuda:0", "mps"):
        result = run(
            "--index", tmp_path / "index", "add", images, *tiny_args, "--precision", "int8",
            "--device", device,
        )  # fmt: skip
        assert result.exit_code == 2, result.stderr
        assert f"--precision int8 runs on the CPU only, not on {device}" in result.stderr
        assert not (tmp_path / "index").exists()


def test_int8_end_to_end_agrees_with_fp32_and_status_shows_it(images, tiny_args, tmp_path):
    fp32, int8 = tmp_path / "fp32", tmp_path / "int8"
    assert run("--index", fp32, "add", images, *tiny_args, "-q").exit_code == 0
    result = run("--index", int8, "add", images, *tiny_args, "--precision", "int8", "-q", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["precision"] == "int8"
    with Index(fp32, read_only=True) as a, Index(int8, read_only=True) as b:
        ids_a, va = a.embeddings()
        ids_b, vb = b.embeddings()
        paths_a = a.catalog.images.paths_for(ids_a)
        paths_b = b.catalog.images.paths_for(ids_b)
    order = np.argsort([paths_b[int(i)] for i in ids_b])
    assert [paths_a[int(i)] for i in ids_a] == sorted(paths_b.values())
    cosines = np.sum(va * vb[order], axis=1)
    assert cosines.mean() >= 0.99 and not np.allclose(va, vb[order], atol=1e-7)
    status = json.loads(run("--index", int8, "status", "--json").stdout)
    assert status["precision"]["used"] == ["int8"]
    assert status["precision"]["int8_agreement"] >= 0.99
    assert "int8" in run("--index", int8, "status").stdout


def _outlier_checkpoint(tiny_checkpoint: Path, out: Path) -> Path:
    """The tiny model with two huge activation channels entering attention, as trained CLIP
    weights have: per-tensor int8 activations then lose the other channels."""
    state = load_file(str(tiny_checkpoint))
    with safe_open(str(tiny_checkpoint), "pt") as fh:
        metadata = fh.metadata()
    for name, tensor in state.items():
        if name.startswith("visual.transformer.resblocks") and name.endswith("ln_1.weight"):
            tensor[:2] *= 1000.0
    save_file(state, str(out), metadata=metadata)
    return out


def test_int8_that_disagrees_with_fp32_is_refused_with_the_figure(
    images, tiny_model, tiny_checkpoint, tmp_path
):
    outliers = _outlier_checkpoint(tiny_checkpoint, tmp_path / "outliers.safetensors")
    args = ["--model", tiny_model["model"], "--checkpoint", outliers]
    result = run("--index", tmp_path / "index", "add", images, *args, "--precision", "int8")
    assert result.exit_code == 1
    assert "mean cosine" in result.stderr and "--precision fp32" in result.stderr
    assert not (tmp_path / "index").exists()  # nothing stored: no half-made index either
    ok = run("--index", tmp_path / "index", "add", images, *args, "-q", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["precision"] == "fp32"


def test_int8_with_the_towers_prepared_starts_without_torch_and_is_still_checked(
    images, tiny_model, tiny_checkpoint, tmp_path, monkeypatch
):
    """int8 runs from its tower, quantised from the fp32 image tower a first add prepared: no
    torch to load, yet a new index still measures it against fp32 (the fp32 tower's vectors,
    what an fp32 add here stores) and refuses weights that do not quantise well."""
    monkeypatch.setenv("IDX_CACHE", str(tmp_path / "cache"))  # no int8 tower made before
    monkeypatch.setattr(encoder_module, "_LOADED", {})  # nor models loaded from another cache
    good = ["--model", tiny_model["model"], "--checkpoint", tiny_model["checkpoint"]]
    outliers = _outlier_checkpoint(tiny_checkpoint, tmp_path / "outliers.safetensors")
    bad = ["--model", tiny_model["model"], "--checkpoint", str(outliers)]
    for name, args in (("good", good), ("bad", bad)):  # fp32 adds prepare the towers
        assert run("--index", tmp_path / f"fp32-{name}", "add", images, *args, "-q").exit_code == 0

    int8 = ["--index", str(tmp_path / "int8"), "add", "--precision", "int8"]
    first = run_cli_result([*int8, str(images / "sunsets"), *good])
    assert first["exit_code"] == 0, first["stderr"]
    assert not first["torch"]
    assert first["towers"] == ["int8"]  # the fp32 tower, opened for the check, is not kept
    status = json.loads(run("--index", tmp_path / "int8", "status", "--json").stdout)
    assert status["precision"]["int8_agreement"] >= 0.99
    more = run_cli_result([*int8, str(images), "--json"])  # trusted now
    assert more["exit_code"] == 0 and not more["torch"]
    assert json.loads(more["out"])["embedded"] > 0

    refused = run_cli_result(
        ["--index", str(tmp_path / "bad"), "add", str(images), *bad, "--precision", "int8"]
    )
    assert refused["exit_code"] == 1 and not refused["torch"]
    assert "mean cosine" in refused["stderr"] and "--precision fp32" in refused["stderr"]
    assert not (tmp_path / "bad").exists()
    assert len(list((tmp_path / "cache" / "int8").iterdir())) == 2  # both quantised, once


def test_int8_on_an_fp32_index_is_checked_then_mixed(images, tiny_args, tmp_path):
    index_dir = tmp_path / "index"
    first = images / "sunsets"
    assert run("--index", index_dir, "add", first, *tiny_args, "-q").exit_code == 0
    more = run("--index", index_dir, "add", images, *tiny_args, "--precision", "int8", "-q")
    assert more.exit_code == 0, more.stderr
    status = json.loads(run("--index", index_dir, "status", "--json").stdout)
    assert status["precision"]["used"] == ["fp32", "int8"]


@gpu
def test_gpu_vectors_agree_with_cpu_vectors(images, tiny_model):
    from idx.indexer.model.encoder import Encoder
    from idx.indexer.model.identity import ModelSpec, identify

    ident = identify(ModelSpec(tiny_model["model"], checkpoint=tiny_model["checkpoint"]))
    cpu = Encoder.load(ident, "cpu")
    cuda = Encoder.load(ident, "cuda")
    batch = torch.rand(16, 3, cpu.image_size, cpu.image_size)
    cos = np.sum(cpu.encode_images(batch) * cuda.encode_images(batch), axis=1)
    assert cos.min() >= 0.999


@gpu
@pytest.mark.parametrize("decode", ["processes", "threads"])  # processes: the GPU's default
def test_cli_add_and_search_on_the_gpu_match_the_cpu(
    images, tiny_args, tmp_path, monkeypatch, decode
):
    on_gpu, on_cpu = tmp_path / "gpu", tmp_path / "cpu"
    assert run("--index", on_cpu, "add", images, *tiny_args, "--device", "cpu").exit_code == 0
    monkeypatch.setenv("IDX_DECODE", decode)
    result = run("--index", on_gpu, "add", images, *tiny_args, "-q", "--json")
    assert result.exit_code == 0, result.stderr
    assert (
        json.loads(result.stdout)["device"].startswith("cuda") and "device: cuda" in result.stderr
    )
    with Index(on_gpu, read_only=True) as a, Index(on_cpu, read_only=True) as b:
        (ids_a, va), (ids_b, vb) = a.embeddings(), b.embeddings()
        paths_a, paths_b = a.catalog.images.paths_for(ids_a), b.catalog.images.paths_for(ids_b)
    order = np.argsort([paths_b[int(i)] for i in ids_b])
    assert [paths_a[int(i)] for i in ids_a] == sorted(paths_b.values())
    assert np.sum(va * vb[order], axis=1).min() >= 0.999  # fp16 autocast, stored as fp32
    hits = run("--index", on_gpu, "search", "--text", "a red circle", "--device", "cuda", "--json")
    assert hits.exit_code == 0, hits.stderr
    assert len(json.loads(hits.stdout)) > 0
    int8 = run("--index", on_gpu, "add", images, "--precision", "int8", "--device", "cuda")
    assert int8.exit_code == 2 and "runs on the CPU only" in int8.stderr
    missing = run(
        "--index", on_gpu, "search", "--text", "x", "--device", f"cuda:{torch.cuda.device_count()}"
    )
    assert missing.exit_code == 2 and "available:" in missing.stderr
