"""Decoding in processes (issue 12, "decoding that keeps the GPU fed"): with IDX_DECODE=processes
(the default on a GPU) `add` stores the rows, vectors and skip reasons threads store; the uint8
crops those processes send, normalised by the encoder (numpy, or torch where the model runs),
equal the float preprocessing; an unknown IDX_DECODE is a usage error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from idx.cli.main import cli
from idx.errors import IdxError
from idx.indexer.index import Index
from idx.indexer.ingest.engines import processes
from idx.indexer.ingest.engines.local import LocalEngine
from idx.indexer.model.encoder import Encoder
from idx.indexer.model.identity import ModelSpec, identify


def _stored(index_dir: Path, root: Path) -> tuple[dict[str, np.ndarray], list[tuple]]:
    with Index(index_dir, read_only=True) as index:
        ids, vectors = index.embeddings()
        paths = index.catalog.images.paths_for(ids)
        skipped = index.catalog.con.execute("SELECT path, reason FROM skipped").fetchall()
    by_path = {str(Path(paths[int(i)]).relative_to(root)): v for i, v in zip(ids, vectors)}
    return by_path, [(str(Path(p).relative_to(root)), r) for p, r in skipped]


def _hashes(index_dir: Path, root: Path) -> dict[str, int | None]:
    """The perceptual hash stored for each image, by its path under `root` (issue 23)."""
    with Index(index_dir, read_only=True) as index:
        ids = index.catalog.images.ids()
        paths = index.catalog.images.paths_for(ids)
        hashes, present = index.catalog.images.phashes(ids)
    return {
        str(Path(paths[int(i)]).relative_to(root)): int(h) if has else None
        for i, h, has in zip(ids, hashes, present)
    }


@pytest.mark.parametrize("onnx", ["1", "0"], ids=["onnx-tower", "torch"])
def test_processes_store_what_threads_store(images, tiny_model, tmp_path, monkeypatch, onnx):
    (images / "bad.jpg").write_bytes(b"not a picture at all")
    Image.new("RGB", (5, 3000), "red").save(images / "tall.png")  # an extreme shape
    monkeypatch.setenv("IDX_ONNX", onnx)
    pools: list[type] = []
    workers = LocalEngine._workers

    def spy(self, *args):  # the real workers, recorded: which kind ran
        chosen = workers(self, *args)
        pools.append(type(chosen).__name__)
        return chosen

    monkeypatch.setattr(LocalEngine, "_workers", spy)
    stored, hashes = {}, {}
    for mode in ("threads", "processes"):
        monkeypatch.setenv("IDX_DECODE", mode)
        with Index(tmp_path / mode, **tiny_model, device="cpu") as index:
            report = index.add([images], workers=2)
        assert (report.added, report.embedded, report.skipped) == (49, 49, 1)
        stored[mode] = _stored(tmp_path / mode, images)
        hashes[mode] = _hashes(tmp_path / mode, images)
    assert pools == ["_Threads", "DecodeProcesses"]
    # the hash travels with the rest of a file's result, not through the ring of crops
    assert hashes["processes"] == hashes["threads"] and None not in hashes["threads"].values()
    (threads, skips_t), (procs, skips_p) = stored["threads"], stored["processes"]
    assert skips_p == skips_t and skips_p[0][0] == "bad.jpg"
    assert procs.keys() == threads.keys() and len(procs) == 49
    cosines = [float(procs[k] @ threads[k]) for k in procs]
    assert min(cosines) >= 0.99999


def test_uint8_crops_normalised_by_the_encoder_equal_the_float_preprocessing(tiny_model):
    ident = identify(ModelSpec(tiny_model["model"], checkpoint=tiny_model["checkpoint"]))
    encoder = Encoder.load(ident, "cpu").torch_model()
    steps = encoder.pixel_steps()
    rng = np.random.default_rng(3)
    pictures = [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
        for w, h, mode in ((300, 200, "RGB"), (64, 640, "L"), (224, 224, "RGBA"))
    ]
    floats = torch.stack([encoder.preprocess(p) for p in pictures])
    crops = np.stack([steps.crop_u8(p) for p in pictures])
    assert crops.dtype == np.uint8 and crops.shape[1:] == (*steps.crop, 3)
    assert np.abs(steps.normalize(crops) - floats.numpy()).max() <= 1e-5
    expected = encoder.encode_images(floats)
    for batch in (torch.from_numpy(crops), crops):  # torch normalises a tensor, numpy an array
        got = encoder.encode_images(batch)
        assert np.sum(got * expected, axis=1).min() >= 0.99999


def test_an_unknown_decode_setting_is_a_usage_error(images, tiny_args, tmp_path, monkeypatch):
    monkeypatch.setenv("IDX_DECODE", "gpu")
    result = CliRunner().invoke(
        cli, ["--index", str(tmp_path / "i"), "add", str(images), *tiny_args]
    )
    assert result.exit_code == 2
    assert "IDX_DECODE='gpu' is unknown; use processes or threads" in result.stderr


_REAL_CHUNK = processes._prepare_chunk


def _chunk_that_dies(entries, first_slot):  # module level: the pool pickles it by name
    if any(entry.path.endswith("sunsets_005.jpg") for entry in entries):
        os._exit(1)  # as a decoder's crash would end the process
    return _REAL_CHUNK(entries, first_slot)


def test_a_dead_decode_process_is_a_clear_error_and_add_resumes(
    images, tiny_model, tmp_path, monkeypatch
):
    monkeypatch.setenv("IDX_DECODE", "processes")
    monkeypatch.setattr(processes, "_prepare_chunk", _chunk_that_dies)
    with Index(tmp_path / "index", **tiny_model, device="cpu") as index:
        with pytest.raises(IdxError, match="a decode process died reading one of 16 files"):
            # one worker: the chunks before the fatal one are done before it starts (with two,
            # which chunk a dying pool takes down with it depends on which worker ran faster)
            index.add([images], workers=1, batch_size=16)
        kept = index.catalog.images.count()
    assert kept == 32  # the two batches before the crash are stored
    monkeypatch.setattr(processes, "_prepare_chunk", _REAL_CHUNK)
    with Index(tmp_path / "index", **tiny_model, device="cpu") as index:
        report = index.add([images], workers=2, batch_size=16)
        assert (report.added, report.unchanged) == (48 - kept, kept)
        assert index.catalog.images.count() == 48


def test_spawned_workers_as_on_macos_and_windows_store_the_same(
    images, tiny_model, indexed, tmp_path, monkeypatch
):
    """Where fork is not used, workers are spawned and send their crops through the pipe."""
    monkeypatch.setattr(processes, "_FORK", False)
    monkeypatch.setenv("IDX_DECODE", "processes")
    with Index(tmp_path / "spawned", **tiny_model, device="cpu") as index:
        report = index.add([images], workers=2)
    assert (report.added, report.embedded) == (48, 48)
    spawned, _ = _stored(tmp_path / "spawned", images)
    spawned_hashes = _hashes(tmp_path / "spawned", images)
    with Index(indexed, read_only=True) as index:  # the same images, added with threads
        ids, vectors = index.embeddings()
        paths = index.catalog.images.paths_for(ids)
    threads = {
        str(Path(paths[int(i)]).relative_to(Path(paths[int(ids[0])]).parents[1])): v
        for i, v in zip(ids, vectors)
    }
    assert spawned.keys() == threads.keys()
    assert min(float(spawned[k] @ threads[k]) for k in spawned) >= 0.99999
    assert spawned_hashes == _hashes(indexed, Path(paths[int(ids[0])]).parents[1])
