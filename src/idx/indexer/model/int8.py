"""The image tower in int8 on the CPU: exported to ONNX once, quantised by ONNX Runtime.

ONNX Runtime's dynamic int8 quantisation was chosen by measurement (bench/README.md,
"Hardware"): on this 2-core CPU it ran ViT-B-32's image tower 2.4-2.6x faster than torch fp32,
where torch's own dynamic quantisation gave 1.3-1.4x, both at mean cosine 0.9998 to fp32 with
random weights. Trained
weights have activation outliers that random ones lack, so an index trusts int8 only after
checking it against fp32 on its own images (Index.add).

The quantised file is derived data, a tower of indexer.model.towers: cached under config.cache_dir(),
keyed by the model's identity and the ONNX Runtime version, and rebuilt when missing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from idx.errors import IdxError, UsageError
from idx.indexer.model import towers
from idx.indexer.model.identity import ModelIdentity

log = logging.getLogger(__name__)

EXTRA = "pip install onnxruntime onnx (dependencies of idx-clip; reinstall it)"


class Int8ImageTower:
    """An ONNX Runtime session running the quantised image tower; unit float32 vectors out."""

    def __init__(self, folder: Path):
        self.session = towers.session(folder / "int8.onnx")
        self.input = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(batch, np.float32)
        return towers.unit(self.session.run(None, {self.input: pixels})[0])


def load(identity: ModelIdentity, visual: Any, image_size: int) -> Int8ImageTower:
    """The quantised tower of `visual` (the fp32 torch module), built and cached on first use
    (indexer.model.towers: once per model and machine, loaded once per process)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        raise UsageError(f"--precision int8 needs ONNX Runtime and ONNX: {EXTRA}") from None
    for _ in range(2):  # a damaged cache entry is removed by load: built again once
        tower = towers.load("int8", identity, Int8ImageTower, optional=False)
        if tower is not None:
            return tower
        where = towers.folder("int8", identity, optional=False)
        assert where is not None  # onnxruntime imported above
        log.info("building the int8 image tower once: %s", where)
        towers.build(where, lambda work: _build(work, visual, image_size))
    raise IdxError(f"the int8 image tower in {where} cannot be loaded; remove that folder")


def _build(work: Path, visual: Any, image_size: int) -> None:
    """int8.onnx (and meta.json) in `work`: the fp32 export, dynamically quantised."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = work / "fp32.onnx"
    towers.export(visual, torch.zeros(1, 3, image_size, image_size), fp32, "pixels")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it logs pre-processing advice at WARNING on the root logger
    try:
        quantize_dynamic(str(fp32), str(work / "int8.onnx"), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    fp32.unlink()
    fp32.with_name(fp32.name + ".data").unlink(missing_ok=True)  # its weights (towers.export)
    (work / "meta.json").write_text(json.dumps({"weights": "QInt8, dynamic"}))
