"""`add` without torch (issue 12, "start fast"): the fp32 image tower in ONNX Runtime and
open_clip's preprocessing in Pillow and numpy give the same pixels and (within float rounding)
the same vectors as torch; a new process's `add` and image search load no torch once a first
`add` prepared the tower; a preprocessing it cannot reproduce keeps torch."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from idx.indexer.index import Index
from idx.indexer.model import image_tower, towers
from idx.indexer.model.encoder import Encoder
from idx.indexer.model.identity import ModelSpec, identify
from tests.fresh import run_cli, run_cli_result, run_main

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def torch_encoder(tiny_model):
    return Encoder.load(
        identify(ModelSpec(tiny_model["model"], checkpoint=tiny_model["checkpoint"]))
    ).torch_model()


@settings(max_examples=40, derandomize=True, deadline=None)
@given(
    width=st.integers(1, 600),
    height=st.integers(1, 600),
    mode=st.sampled_from(["RGB", "L", "RGBA", "P", "CMYK"]),
    seed=st.integers(0, 2**16),
)
def test_preprocessing_equals_torchvisions(torch_encoder, width, height, mode, seed):
    ours = image_tower.Preprocess.of(torch_encoder.preprocess)
    assert isinstance(ours, image_tower.Preprocess)
    rng = np.random.default_rng(seed)
    picture = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    picture = picture.convert(mode) if mode != "RGB" else picture
    theirs = torch_encoder.preprocess(picture).numpy()
    assert ours(picture).shape == theirs.shape
    assert np.abs(ours(picture) - theirs).max() <= image_tower.MAX_PIXEL_DIFF
    assert ours.resized(picture).size == torch_encoder.resize_for_model(picture).size


def test_a_preprocessing_it_cannot_reproduce_is_refused(torch_encoder, tmp_path, monkeypatch):
    from torchvision import transforms

    monkeypatch.setenv("IDX_CACHE", str(tmp_path))
    steps = list(torch_encoder.preprocess.transforms)
    flipped = transforms.Compose([transforms.RandomHorizontalFlip(), *steps])
    assert "not open_clip's usual one" in image_tower.Preprocess.of(flipped)
    ident = torch_encoder.identity
    assert not image_tower.prepare(ident, torch_encoder.model, flipped, 64)
    refused = list((tmp_path / "image").glob("*.refused.json"))
    assert len(refused) == 1 and "preprocessing" in json.loads(refused[0].read_text())["reason"]
    assert image_tower.cached(ident) is None


def _vectors_by_path(index_dir) -> dict[str, np.ndarray]:
    with Index(index_dir, read_only=True) as index:
        ids, vectors = index.embeddings()
        paths = index.catalog.images.paths_for(ids)
    return {paths[int(i)]: v for i, v in zip(ids, vectors)}


def test_add_and_image_search_in_a_new_process_load_no_torch(tmp_path, images, tiny_model):
    first, rest = tmp_path / "first", images
    first.mkdir()
    for folder in sorted(p for p in images.iterdir() if p.is_dir())[:2]:
        folder.rename(first / folder.name)
    towered = tmp_path / "towered"
    with Index(towered, **tiny_model) as index:  # loads torch, then prepares the towers
        index.add([first])
        ident = index.identity()
    assert image_tower.cached(ident) is not None
    assert (towers.folder("image", ident) / "image.onnx").is_file()
    assert (towers.folder("image", ident) / "image.onnx.data").is_file()  # mapped, not copied

    out, torch_loaded = run_cli(["--index", str(towered), "add", str(rest), "--json"])
    assert not torch_loaded
    assert json.loads(out)["embedded"] == 36
    plain = tmp_path / "plain"
    run_cli(
        [
            "--index",
            str(plain),
            "add",
            str(first),
            str(rest),
            "-q",
            "--model",
            tiny_model["model"],
            "--checkpoint",
            tiny_model["checkpoint"],
        ],
        {"IDX_ONNX": "0"},
    )
    ours, theirs = _vectors_by_path(towered), _vectors_by_path(plain)
    assert sorted(ours) == sorted(theirs) and len(ours) == 48
    cosines = [float(ours[p] @ theirs[p]) for p in ours]
    assert min(cosines) >= image_tower.MIN_COSINE

    query = str(next(rest.rglob("*.jpg")))
    args = ["--index", str(towered), "search", "--image", query, "-k", "5", "--json"]
    fast, torch_loaded = run_cli(args)
    assert not torch_loaded
    slow, torch_loaded = run_cli(args, {"IDX_ONNX": "0"})
    assert torch_loaded
    assert [h["id"] for h in json.loads(fast)] == [h["id"] for h in json.loads(slow)]


def test_a_damaged_image_tower_is_removed_and_prepared_again(
    tmp_path, monkeypatch, images, tiny_model
):
    """A tower folder whose meta.json is damaged (a crash, a full disk) is removed with a warning
    by the next process, which prepares it again, so later ones start without torch again."""
    monkeypatch.setenv("IDX_CACHE", str(tmp_path / "cache"))
    folders = sorted(p for p in images.iterdir() if p.is_dir())
    model = ["--model", tiny_model["model"], "--checkpoint", tiny_model["checkpoint"]]
    index = ["--index", str(tmp_path / "index")]
    run_cli([*index, "add", str(folders[0]), "-q", *model])
    ident = identify(ModelSpec(tiny_model["model"], checkpoint=tiny_model["checkpoint"]))
    meta = towers.folder("image", ident) / "meta.json"
    meta.write_text('{"preprocess": \n')

    repaired = run_cli_result([*index, "add", str(folders[1]), "--json"])
    assert repaired["exit_code"] == 0, repaired["stderr"]
    assert "unusable" in repaired["stderr"] and repaired["torch"]
    assert json.loads(meta.read_text())["preprocess"]  # prepared again, whole
    _, torch_loaded = run_cli([*index, "add", str(folders[2]), "--json"])
    assert not torch_loaded


def test_the_first_add_notes_the_towers_it_prepares_unless_quiet(tmp_path, images, tiny_model):
    """A machine's first add of a model prepares its towers, in the thread that loads the
    model (a decode worker): the note says so, and -q leaves it out as it does the command's
    own notes."""
    folder = sorted(p for p in images.iterdir() if p.is_dir())[0]
    model = ["--model", tiny_model["model"], "--checkpoint", tiny_model["checkpoint"]]

    def add(name: str, *flags: str) -> str:
        args = ["--index", str(tmp_path / name), "add", str(folder), *model, *flags]
        return run_main(
            args, {"IDX_CACHE": str(tmp_path / name / "cache")}, slow_towers=True
        ).stderr

    loud = add("loud")
    assert (
        "note: preparing the image tower of idx-tiny so that later runs start without torch" in loud
    )
    assert "note: preparing the text tower of idx-tiny" in loud
    quiet = add("quiet", "-q")
    assert "preparing" not in quiet and "note:" not in quiet
    assert (tmp_path / "quiet" / "cache" / "image").is_dir()  # prepared all the same
