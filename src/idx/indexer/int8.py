"""The image tower in int8 on the CPU: exported to ONNX once, quantised by ONNX Runtime.

ONNX Runtime's dynamic int8 quantisation was chosen by measurement (bench/README.md, "int8"):
on this 2-core CPU it ran ViT-B-32's image tower 2.7x faster than torch fp32, where torch's own
dynamic quantisation gave 1.3x, both at mean cosine 0.9998 to fp32 with random weights. Trained
weights have activation outliers that random ones lack, so an index trusts int8 only after
checking it against fp32 on its own images (Index.add).

The quantised file is derived data: cached under config.cache_dir(), keyed by the model's
identity and the ONNX Runtime version, and rebuilt when missing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from idx import config
from idx.errors import UsageError
from idx.indexer import towers
from idx.indexer.identity import ModelIdentity

log = logging.getLogger(__name__)

EXTRA = "pip install onnxruntime onnx (dependencies of idx-clip; reinstall it)"


class Int8ImageTower:
    """An ONNX Runtime session running the quantised image tower; unit float32 vectors out."""

    def __init__(self, path: Path):
        self.session = towers.session(path)
        self.input = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(batch, np.float32)
        return towers.unit(self.session.run(None, {self.input: pixels})[0])


def load(identity: ModelIdentity, visual: Any, image_size: int) -> Int8ImageTower:
    """The quantised tower of `visual` (the fp32 torch module), built and cached on first use."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise UsageError(f"--precision int8 needs ONNX Runtime: {EXTRA}") from None
    path = _cached_path(identity)
    if not path.is_file():
        _build(visual, image_size, path)
    return Int8ImageTower(path)


def _cached_path(identity: ModelIdentity) -> Path:
    import onnxruntime

    key = hashlib.sha256((identity.to_json() + onnxruntime.__version__).encode()).hexdigest()[:16]
    return config.cache_dir() / "int8" / f"{identity.name}-{key}.onnx"


def _build(visual: Any, image_size: int, path: Path) -> None:
    try:
        import onnx  # noqa: F401
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise UsageError(f"--precision int8 needs ONNX to build the int8 model: {EXTRA}") from None
    import torch

    log.info("building the int8 image tower once: %s", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        towers.export(visual, torch.zeros(1, 3, image_size, image_size), fp32, "pixels")
        quantised = Path(tmp) / "int8.onnx"
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # it logs pre-processing advice at WARNING on the root logger
        try:
            quantize_dynamic(str(fp32), str(quantised), weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        os.replace(quantised, path)
