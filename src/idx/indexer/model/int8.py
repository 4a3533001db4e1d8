"""The image tower in int8 on the CPU: the fp32 tower in ONNX, quantised by ONNX Runtime once.

ONNX Runtime's dynamic int8 quantisation was chosen by measurement (bench/README.md,
"Hardware"): on this 2-core CPU it ran ViT-B-32's image tower 2.4-2.6x faster than torch fp32,
where torch's own dynamic quantisation gave 1.3-1.4x, both at mean cosine 0.9998 to fp32 with
random weights. Trained
weights have activation outliers that random ones lack, so an index trusts int8 only after
checking it against fp32 on its own images (Index.add).

The quantised file is derived data, a tower of indexer.model.towers: cached under config.cache_dir(),
keyed by the model's identity and the ONNX Runtime version, and rebuilt when missing. It is
quantised from the fp32 image tower when this machine has that (indexer.model.image_tower: the
same export, byte for byte the same int8 file), so that neither building nor running it needs
torch; else from the torch model.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from idx.errors import IdxError, UsageError
from idx.indexer.model import image_tower, towers
from idx.indexer.model.identity import ModelIdentity

log = logging.getLogger(__name__)

EXTRA = "pip install onnxruntime onnx (dependencies of idx-clip; reinstall it)"
#: Bytes of fp32 weights quantised per second on a 2-core CPU (for the note's estimate).
QUANTISED_PER_SECOND = 100e6


class Int8ImageTower:
    """An ONNX Runtime session running the quantised image tower; unit float32 vectors out."""

    def __init__(self, folder: Path):
        self.session = towers.session(folder / "int8.onnx")
        self.input = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(batch, np.float32)
        return towers.unit(self.session.run(None, {self.input: pixels})[0])


def load(
    identity: ModelIdentity, visual: Any = None, image_size: int = 224
) -> Int8ImageTower | None:
    """The quantised image tower of this model, built and cached on first use
    (indexer.model.towers: once per model and machine, loaded once per process): from `visual`
    (the fp32 torch module, of `image_size`) when given, else from the cached fp32 image tower.
    None when neither is at hand: the caller loads the model and asks again with its `visual`."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise UsageError(f"--precision int8 needs ONNX Runtime and ONNX: {EXTRA}") from None
    for _ in range(2):  # a damaged cache entry is removed by load: built again once
        tower = towers.load("int8", identity, Int8ImageTower, optional=False)
        if tower is not None:
            return tower
        where = towers.folder("int8", identity, optional=False)
        assert where is not None  # onnxruntime imported above
        _require_onnx()
        if visual is not None:
            towers.announce("int8", identity, towers.seconds_for(towers.parameters(visual)))
            towers.build(where, lambda work: _exported(work, visual, image_size))
        elif not _from_fp32(identity, where):
            return None
    raise IdxError(f"the int8 image tower in {where} cannot be loaded; remove that folder")


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        raise UsageError(f"--precision int8 needs ONNX Runtime and ONNX: {EXTRA}") from None


def _from_fp32(identity: ModelIdentity, where: Path) -> bool:
    """Build the int8 tower at `where` from the cached fp32 image tower; False when there is
    none, or it cannot be quantised (damaged: the model is loaded and exported instead)."""
    fp32 = image_tower.steps(identity)
    if fp32 is None:
        return False
    data = fp32.onnx.with_name(fp32.onnx.name + ".data")
    size = data.stat().st_size if data.is_file() else fp32.onnx.stat().st_size
    towers.announce("int8", identity, size / QUANTISED_PER_SECOND)
    try:
        towers.build(where, lambda work: _quantised(work, _copied(fp32.onnx, work)))
    except Exception as exc:  # noqa: BLE001 - any damage: the torch model takes over
        log.warning("could not quantise the image tower in %s (%s)", fp32.onnx.parent, exc)
        return False
    return True


def _exported(work: Path, visual: Any, image_size: int) -> None:
    """The fp32 export of `visual` in `work`, quantised."""
    import torch

    fp32 = work / "fp32.onnx"
    towers.export(visual, torch.zeros(1, 3, image_size, image_size), fp32, "pixels")
    _quantised(work, fp32)


def _copied(source: Path, work: Path) -> Path:
    """The fp32 tower's ONNX file (and its weights beside it) copied into `work`: the quantiser
    writes beside its input, which must not be the shared tower's folder (and onnx refuses
    weights behind a hard link)."""
    for name in (source.name, source.name + ".data"):
        if (source.parent / name).is_file():
            shutil.copyfile(source.parent / name, work / name)
    return work / source.name


def _quantised(work: Path, fp32: Path) -> None:
    """int8.onnx (and meta.json) in `work`: `fp32` (an ONNX file there, its weights beside it)
    dynamically quantised, then removed."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it logs pre-processing advice at WARNING on the root logger
    try:
        quantize_dynamic(str(fp32), str(work / "int8.onnx"), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    fp32.unlink()
    fp32.with_name(fp32.name + ".data").unlink(missing_ok=True)
    (work / "meta.json").write_text(json.dumps({"weights": "QInt8, dynamic"}))
