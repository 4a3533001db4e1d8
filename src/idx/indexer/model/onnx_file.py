"""A torch module as an ONNX file with its weights beside it (`<name>.onnx.data`), written one
tensor at a time.

torch's exporter serialises the graph with every weight inside it: the protobuf, its bytes in
Python and onnx's parse of them are in memory at once, 1.07 GB on top of the model for
ViT-B-32's image tower, the peak of a machine's first `add` (2.7 GB; bench/README.md,
"Start-up"). Here torch exports the graph alone, the weights as named inputs, and each weight
is written from the module straight to the file: one the graph only transposes is written
transposed (the folding torch's exporter would have done), and ONNX Runtime folds the small
constants left when it opens the file. ViT-B-32's towers come out the same, bit for bit, with
the export's peak at +0.3 GB. A graph whose inputs are not all the module's parameters and
buffers is exported whole instead (`whole`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

#: Weights of at least this many bytes start on a multiple of ALIGN in the data file (onnx's own
#: rule, so that ONNX Runtime can map them in place); smaller ones on a multiple of 64.
ALIGN_FROM, ALIGN = 1 << 20, 1 << 16


def write(module: Any, example: Any, path: Path, input_name: str) -> None:
    """`module` (torch, on the CPU) to ONNX at `path` and its weights to `<path>.data`; batch
    dimension dynamic; output "features"."""
    import onnx

    _export(module, example, path, input_name, weights=False)
    model = onnx.load(str(path))
    tensors = dict(module.named_parameters()) | dict(module.named_buffers())
    names = [i.name for i in model.graph.input if i.name != input_name]
    if any(name not in tensors for name in names):
        return whole(module, example, path, input_name)
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    # a weight used once, by a Transpose: written transposed, under that node's output
    transposed = {
        node.input[0]: node
        for node in model.graph.node
        if node.op_type == "Transpose" and node.input[0] in tensors and uses[node.input[0]] == 1
    }
    data = path.with_name(path.name + ".data")
    with open(data, "wb") as out:
        for name in names:
            array = tensors[name].detach().cpu().numpy()
            node = transposed.get(name)
            if node is not None:
                perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
                array, name = array.transpose(perm), node.output[0]
            model.graph.initializer.append(_written(out, data.name, name, array))
    kept = [i for i in model.graph.input if i.name == input_name]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    done = {node.output[0] for node in transposed.values()}
    nodes = [n for n in model.graph.node if n.op_type != "Transpose" or n.output[0] not in done]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save_model(model, str(path))


def whole(module: Any, example: Any, path: Path, input_name: str) -> None:
    """torch's own export (the weights inside the file), then the weights moved beside it."""
    import onnx

    _export(module, example, path, input_name, weights=True)
    model = onnx.load(str(path))
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)  # onnx appends to a data file already there
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
        size_threshold=1024,
    )


def _export(module: Any, example: Any, path: Path, input_name: str, *, weights: bool) -> None:
    import torch

    # Not under inference_mode: there torch takes a fused attention kernel ONNX cannot export.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            str(path),
            input_names=[input_name],
            output_names=["features"],
            dynamic_axes={input_name: {0: "batch"}, "features": {0: "batch"}},
            dynamo=False,
            opset_version=17,
            export_params=weights,
            # without the weights: each one an input named as in the module, none folded
            keep_initializers_as_inputs=not weights,
            do_constant_folding=weights,
        )


def _written(out: Any, location: str, name: str, array: Any) -> Any:
    """`array` appended to the open data file `out` (aligned); its TensorProto pointing there."""
    import numpy as np
    from onnx import TensorProto, helper

    array = np.ascontiguousarray(array)
    align = ALIGN if array.nbytes >= ALIGN_FROM else 64
    out.write(b"\0" * (-out.tell() % align))
    offset = out.tell()
    out.write(memoryview(array.reshape(-1)).cast("B"))
    tensor = TensorProto(
        name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype), dims=array.shape
    )
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", array.nbytes)):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, str(value)
    return tensor
