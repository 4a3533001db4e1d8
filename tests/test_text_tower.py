"""Text queries without torch (issue 12, "start fast"): the ONNX text tower and the `tokenizers`
copy of open_clip's BPE give the same tokens and vectors as open_clip, a new process's
`idx search --text` loads no torch once an `add` prepared them, and anything the tower cannot
take (other tokenizers, odd characters, a damaged cache) goes through the model as before."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idx.indexer.index import Index
from idx.indexer.model import text_tower, towers
from idx.indexer.model.encoder import Encoder
from idx.indexer.model.identity import ModelSpec, identify
from idx.ops.search import search
from tests.fresh import run_cli, run_cli_result, run_main

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def tower_and_model(tmp_path_factory, tiny_model):
    """The tiny model loaded, and its text tower prepared in a cache of this module's own."""
    cache = tmp_path_factory.mktemp("tower-cache")
    old = os.environ.get("IDX_CACHE")
    os.environ["IDX_CACHE"] = str(cache)
    try:
        encoder = Encoder.load(
            identify(ModelSpec(tiny_model["model"], checkpoint=tiny_model["checkpoint"]))
        ).torch_model()  # the model in torch, whether or not the image tower is cached
        assert text_tower.prepare(encoder.identity, encoder.model, encoder.tokenizer)
        tower = text_tower.cached(encoder.identity)
    finally:
        if old is None:
            os.environ.pop("IDX_CACHE", None)
        else:
            os.environ["IDX_CACHE"] = old
    assert tower is not None
    return tower, encoder


CORPUS = [
    *text_tower.PROBES,
    "a photo of a cake",
    "Red  Apple\tand\nBANANA",
    "it's a dog's life, isn't it?",
    "&amp;amp; &quot;quoted&quot;",
    "1,000,000 stars ★ and ½ moons",
    "日本語のテキスト、カタカナ",
    "",
    "   ",
    "x" * 400,
]


def _torch_tokens(encoder, texts):
    return encoder.tokenizer(list(texts)).numpy()


def test_tokens_equal_open_clips_on_the_corpus(tower_and_model):
    tower, encoder = tower_and_model
    assert all(text_tower.eligible(t) for t in CORPUS)
    assert np.array_equal(tower.tokens(CORPUS), _torch_tokens(encoder, CORPUS))


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.text(max_size=40))
def test_tokens_equal_open_clips_for_any_eligible_text(tower_and_model, text):
    tower, encoder = tower_and_model
    if text_tower.eligible(text):
        assert tower.tokens([text]).tolist() == _torch_tokens(encoder, [text]).tolist()


def test_vectors_match_the_torch_text_tower(tower_and_model):
    tower, encoder = tower_and_model
    texts = ["a photo of a red apple", "yellow triangles", "word " * 90]
    cosines = np.sum(tower.encode(texts) * encoder.encode_texts(texts), axis=1)
    assert cosines.min() >= text_tower.MIN_COSINE
    norms = np.linalg.norm(tower.encode(texts), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)


def test_texts_the_tower_may_split_differently_are_not_eligible():
    assert text_tower.eligible("café au lait")
    assert text_tower.eligible("e\u0301")  # ftfy composes it: é
    assert not text_tower.eligible("q\u0301")  # a combining accent nothing composes with
    assert not text_tower.eligible("pizza \U0001f355")  # outside the Basic Multilingual Plane
    assert not text_tower.eligible("long \u017ftory")  # the long s


def test_a_tokenizer_it_cannot_reproduce_is_refused_once(tower_and_model, tmp_path, monkeypatch):
    from open_clip.tokenizer import SimpleTokenizer

    _, encoder = tower_and_model
    monkeypatch.setenv("IDX_CACHE", str(tmp_path))
    canonical = SimpleTokenizer(clean="canonicalize")  # drops punctuation: not the lower clean
    assert not text_tower.prepare(encoder.identity, encoder.model, canonical)
    refused = list((tmp_path / "text").glob("*.refused.json"))
    assert len(refused) == 1 and "cleans" in json.loads(refused[0].read_text())["reason"]
    assert text_tower.cached(encoder.identity) is None
    # not tried again, even with a tokenizer it could convert
    assert not text_tower.prepare(encoder.identity, encoder.model, encoder.tokenizer)


def _search_json(index_dir, text, env_extra=None):
    """`idx search --text` in a fresh interpreter: (hits, whether torch was imported)."""
    args = ["--index", str(index_dir), "search", "--text", text, "-k", "5", "--json"]
    out, torch_loaded = run_cli(args, env_extra)
    return json.loads(out), torch_loaded


def test_add_prepares_the_tower_and_a_new_search_process_loads_no_torch(
    tmp_path, images, tiny_model
):
    index_dir = tmp_path / "index"
    with Index(index_dir, **tiny_model) as index:
        index.add([images])
        ident = index.identity()
    assert text_tower.cached(ident) is not None
    fast, torch_loaded = _search_json(index_dir, "red circles")
    assert not torch_loaded
    slow, torch_loaded = _search_json(index_dir, "red circles", {"IDX_ONNX": "0"})
    assert torch_loaded
    assert [h["id"] for h in fast] == [h["id"] for h in slow]
    assert np.allclose([h["score"] for h in fast], [h["score"] for h in slow], atol=1e-5)
    # a text the tower cannot take goes through the model, with the same answer as before
    odd, torch_loaded = _search_json(index_dir, "red circles\u0332")
    assert torch_loaded and len(odd) == 5


def test_a_text_query_in_a_new_process_loads_only_what_it_needs(indexed_copy, tiny_model):
    """A query from a new process is timed against rclip's (bench/startup.py): it loads no
    torch, no Arrow (~55 MB), no Pillow, no add pipeline, no model loader."""
    with Index(indexed_copy, read_only=True, **tiny_model) as index:
        search(index, text="blue squares", k=3)  # prepares the tower if the cache lacks it
    args = ["--index", str(indexed_copy), "search", "--text", "red circles", "-k", "5", "--json"]
    result = run_cli_result(args)
    assert result["exit_code"] == 0 and len(json.loads(result["out"])) == 5
    unneeded = {
        *("torch", "open_clip", "pyarrow", "PIL", "sklearn", "matplotlib", "pathspec"),
        *("multiprocessing", "idx.indexer.ingest.pipeline", "idx.indexer.model.encoder"),
    }
    assert unneeded.isdisjoint(result["modules"])


def test_a_damaged_cache_is_dropped_and_the_model_answers(tmp_path, indexed_copy, tiny_model):
    with Index(indexed_copy, read_only=True, **tiny_model) as index:
        ident = index.identity()
        search(index, text="blue squares", k=3)  # prepares the tower if the cache lacks it
    onnx = towers.folder("text", ident) / "text.onnx"
    onnx.write_bytes(b"not an onnx file")
    hits, torch_loaded = _search_json(indexed_copy, "blue squares")  # a new process
    assert torch_loaded and len(hits) == 5
    # that process rebuilt it, and the next one uses it again
    assert onnx.stat().st_size > 1000
    again, torch_loaded = _search_json(indexed_copy, "blue squares")
    assert not torch_loaded and [h["id"] for h in again] == [h["id"] for h in hits]
    assert text_tower.cached(ident) is not None


def test_preparing_the_tower_says_what_and_why_on_stderr_unless_quiet(tmp_path, indexed_copy):
    """The first text query of a model on a machine prepares its tower. Where that takes
    seconds (ViT-B-32's: ~5 s; here the tiny model's, made to look as slow) the CLI says what,
    why and how long in a `note:` line, which -q leaves out as it does the command's own; a
    model that prepares in a blink gets no line."""

    def search(cache: str, *flags: str, slow: bool = True) -> subprocess.CompletedProcess:
        command = ["--index", str(indexed_copy), "search", "--text", "red circles", *flags]
        return run_main(command, {"IDX_CACHE": str(tmp_path / cache)}, slow_towers=slow)

    loud = search("loud").stderr
    assert "note: preparing the text tower of " in loud
    assert "so that text queries start without torch (once per model on this machine, ~" in loud
    assert "preparing" not in search("quiet", "-q").stderr
    assert (tmp_path / "quiet" / "text").is_dir()  # prepared all the same
    assert "preparing" not in search("blink", slow=False).stderr
    (tower,) = [p for p in (tmp_path / "loud" / "text").iterdir() if p.is_dir()]
    assert (tower / "text.onnx.data").is_file()  # its weights beside the graph, mapped
