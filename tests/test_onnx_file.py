"""A torch module to ONNX with its weights written beside the graph a tensor at a time
(indexer/model/onnx_file.py): the same outputs as torch and as torch's own whole-file export,
the weights outside the graph file (ONNX Runtime maps them)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from idx.indexer.model import onnx_file, text_tower, towers
from idx.indexer.model.encoder import Encoder
from idx.indexer.model.identity import ModelSpec, identify

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def model(tiny_model):
    encoder = Encoder.load(
        identify(ModelSpec(tiny_model["model"], checkpoint=tiny_model["checkpoint"]))
    ).torch_model()
    return encoder.model, encoder.tokenizer


def _outputs(path, name, inputs):
    return towers.session(path).run(None, {name: inputs})[0]


@pytest.mark.parametrize("tower", ["image", "text"])
def test_written_a_tensor_at_a_time_it_answers_as_torch_and_the_whole_export(
    model, tmp_path, monkeypatch, tower
):
    clip, tokenizer = model
    if tower == "image":
        module, name = clip.visual, "pixels"
        size = clip.visual.image_size
        side = size[0] if isinstance(size, tuple | list) else size
        inputs = torch.from_numpy(np.random.default_rng(0).standard_normal((3, 3, side, side)))
        inputs = inputs.float()
    else:
        module, name = text_tower._text_module(clip), "tokens"
        inputs = tokenizer(["a red apple", "two dogs", "word " * 90])
    (tmp_path / "streamed").mkdir()
    (tmp_path / "whole").mkdir()
    streamed, whole = tmp_path / "streamed" / "t.onnx", tmp_path / "whole" / "t.onnx"
    onnx_file.whole(module, inputs[:1], whole, name)
    monkeypatch.setattr(onnx_file, "whole", None)  # written a tensor at a time, not whole
    onnx_file.write(module, inputs[:1], streamed, name)
    with torch.no_grad():
        expected = module(inputs).numpy()
    ours = _outputs(streamed, name, inputs.numpy())
    assert np.allclose(ours, expected, atol=1e-5)
    assert np.allclose(ours, _outputs(whole, name, inputs.numpy()), atol=1e-6)
    graph = onnx.load(str(streamed), load_external_data=False).graph
    assert all(len(i.raw_data) == 0 for i in graph.initializer)  # every weight in t.onnx.data
    assert {i.name for i in graph.input} == {name}
    sizes = [(tmp_path / kind / "t.onnx.data").stat().st_size for kind in ("streamed", "whole")]
    assert sizes[0] == pytest.approx(sizes[1], rel=0.05)  # the same weights (aligned apart)
