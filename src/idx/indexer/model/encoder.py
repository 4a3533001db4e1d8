"""open_clip model loading and encoding: images and text to L2-normalised float32 vectors.

torch and open_clip are imported lazily so that commands with nothing to embed start fast.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from idx import config
from idx.errors import UsageError
from idx.indexer.model import devices, image_tower, int8, text_tower, weights
from idx.indexer.model.devices import Device
from idx.indexer.model.identity import ModelIdentity

log = logging.getLogger(__name__)


class Encoder:
    """A loaded open_clip model with its preprocessing and tokenizer, on a device.

    Vectors come out as L2-normalised float32 on the CPU whatever the device: fp16 autocast on
    CUDA (bf16 where the GPU has no fast fp16) and MPS, fp32 on the CPU, or the image tower in
    int8 through ONNX Runtime (`precision="int8"`, CPU only). `cuda` on a machine with several
    GPUs runs one replica per GPU and splits each batch between them. In fp32 on the CPU, once
    a first load prepared it (`prepare_towers`), the image tower runs from its ONNX export
    without torch (indexer.model.image_tower), and so does int8 (from the int8 tower, with the fp32
    tower as its reference for `agreement`): `model` and `tokenizer` are then None, `preprocess`
    gives numpy arrays, and `torch_model()` loads the torch model should a caller need it.
    """

    def __init__(
        self,
        identity: ModelIdentity,
        model: Any,
        preprocess: Any,
        tokenizer: Any,
        device: Device | None = None,
        precision: str = "fp32",
    ):
        self.identity = identity
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device or Device("cpu", ("cpu",), "cpu")
        self.precision = precision
        self.replicas: list[Any] = [model]
        self.int8: Any = None
        #: The fp32 image tower in ONNX Runtime when the model runs in fp32 without torch.
        self.image_tower: Any = None
        self._pixel_steps: image_tower.Preprocess | None | Literal[False] = None  # False: none
        self._scale_offset: dict[Any, tuple[Any, Any]] = {}  # crops to input, by torch device

    @property
    def image_size(self) -> int:
        return int(self.identity.image_size or 224)

    @classmethod
    def load(
        cls,
        identity: ModelIdentity,
        device: str | Device = "cpu",
        precision: str = "fp32",
        *,
        prepare: bool = False,
    ) -> Encoder:
        """The model of `identity` on `device` (auto|cpu|cuda|cuda:N|mps) in `precision`; loaded
        once per process and reused (a second Index or command in the same process gets the
        same object). With `prepare`, a model that has to be built in torch to run in fp32 on
        the CPU prepares its towers first and runs from them (`_built`)."""
        if precision not in config.PRECISIONS:
            raise UsageError(f"--precision {precision!r} is unknown; use fp32 or int8")
        if isinstance(device, Device):
            resolved = device
            devices.for_precision(device.kind, precision)  # int8 on a GPU: refused
        else:
            resolved = devices.resolve(devices.for_precision(device, precision))
        key = (identity.key(), resolved.names, precision)
        if key not in _LOADED:
            _LOADED[key] = cls._from_towers(identity, resolved, precision) or cls._built(
                identity, resolved, precision, prepare
            )
        loaded = _LOADED[key]
        if loaded.device != resolved:  # the same model asked for another way ("auto", "cpu")
            loaded = copy.copy(loaded)  # shares the model; says how this caller chose
            loaded.device = resolved
        return loaded

    @classmethod
    def _from_towers(
        cls, identity: ModelIdentity, device: Device, precision: str
    ) -> Encoder | None:
        """The model from the towers this machine prepared, torch left unloaded (texts the text
        tower cannot take load it on first use: `torch_model`): on the CPU, fp32 from the image
        tower (indexer.model.image_tower), int8 from the int8 tower (indexer.model.int8) with the
        image tower's preprocessing. None when they are not there (IDX_ONNX=0: never)."""
        if device.kind != "cpu":
            return None
        steps = image_tower.steps(identity)
        if steps is None:
            return None
        if precision == "fp32":
            tower = image_tower.cached(identity)
            if tower is None:
                return None
            encoder = cls(identity, None, tower.preprocess, None, device, "fp32")
            encoder.image_tower = tower
        else:
            quantised = int8.load(identity)
            if quantised is None:
                return None
            encoder = cls(identity, None, steps.preprocess, None, device, precision)
            encoder.int8 = quantised
        identity.embed_dim = identity.embed_dim or steps.embed_dim
        identity.image_size = identity.image_size or steps.image_size
        return encoder

    @classmethod
    def _built(
        cls, identity: ModelIdentity, device: Device, precision: str, prepare: bool
    ) -> Encoder:
        """The model built in torch; with `prepare`, in fp32 on the CPU, its towers prepared for
        this machine (`prepare_towers`) and the model run from them: a machine's first `add`
        then embeds as later ones do (ONNX Runtime embedded 1.9x faster than torch on 2 idle
        cores; bench/README.md, "Start-up"), and the torch model is let go, so that its memory
        and the tower's are not held together (`torch_model` builds it again if asked)."""
        built = cls._create(identity, device, precision)
        if not (prepare and device.kind == "cpu" and precision == "fp32"):
            return built
        built.prepare_towers()
        return cls._from_towers(identity, device, precision) or built  # none: refused, IDX_ONNX=0

    def torch_model(self) -> Encoder:
        """This model loaded in torch (itself unless it runs from the ONNX image tower)."""
        if self.model is not None:
            return self
        key = (self.identity.key(), self.device.names, "fp32 in torch")
        if key not in _LOADED:  # once per process, whichever copy of this encoder asks
            _LOADED[key] = self._create(self.identity, self.device, "fp32")
        return _LOADED[key]

    def prepare_towers(self) -> None:
        """Export the ONNX towers of this loaded model for later processes (once per model and
        machine; indexer.model.towers): the image tower, and the text tower."""
        if self.model is None:
            return
        image_tower.prepare(self.identity, self.model, self.preprocess, self.image_size)
        text_tower.prepare(self.identity, self.model, self.tokenizer)

    @classmethod
    def _create(cls, identity: ModelIdentity, device: Device, precision: str) -> Encoder:
        model, preprocess, tokenizer = weights.load(identity)
        identity.embed_dim = _embed_dim(model)
        identity.image_size = _model_image_size(model)
        encoder = cls(identity, model, preprocess, tokenizer, device, precision)
        if device.kind != "cpu":
            others = [copy.deepcopy(model).to(gpu) for gpu in device.names[1:]]
            encoder.replicas = [model.to(device.names[0]), *others]
            encoder.model = encoder.replicas[0]
        if precision == "int8":
            encoder.int8 = int8.load(identity, model.visual, encoder.image_size)
        return encoder

    def encode_images(self, batch: Any) -> np.ndarray:
        """Encode a preprocessed image batch (N, 3, H, W; a tensor or an array) to unit
        vectors. A uint8 batch (N, H, W, 3) of crops (`pixel_steps().crop_u8`) is normalised
        here first: on the GPU itself when the model runs there."""
        if _is_crops(batch) and (self.model is None or self.int8 is not None):
            batch = self._normalize(np.asarray(batch))
        if self.int8 is not None:
            return self.int8(np.asarray(batch))
        if self.image_tower is not None:
            return self.image_tower.encode(batch)
        if len(self.replicas) == 1:
            return self._encode_on(self.model, batch)
        import torch

        chunks = torch.chunk(torch.as_tensor(batch), len(self.replicas))
        with ThreadPoolExecutor(len(chunks)) as pool:  # each GPU works while the others do
            parts = list(pool.map(self._encode_on, self.replicas, chunks))
        return np.concatenate(parts)

    def _encode_on(self, model: Any, batch: Any) -> np.ndarray:
        import torch

        batch = torch.as_tensor(batch)  # an array too, as the docstring promises
        with torch.inference_mode(), self._autocast(model):
            if self.device.kind == "cuda":
                batch = batch.pin_memory().to(_device_of(model), non_blocking=True)
            elif self.device.kind != "cpu":
                batch = batch.to(_device_of(model))
            if _is_crops(batch):
                batch = self._normalize(batch)
            feats = model.encode_image(batch)
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32, copy=False)

    def pixel_steps(self) -> image_tower.Preprocess | None:
        """This model's preprocessing as data (crop, then normalise), None when it is not
        open_clip's usual one (then only `preprocess` applies). Worked out once."""
        if self._pixel_steps is None:
            if isinstance(self.preprocess, image_tower.Preprocess):
                self._pixel_steps = self.preprocess
            else:
                steps = image_tower.Preprocess.of(self.preprocess)
                self._pixel_steps = False if isinstance(steps, str) else steps
        return self._pixel_steps or None

    def _normalize(self, crops: Any) -> Any:
        """uint8 crops (N, H, W, 3) to the model's float32 input (N, 3, H, W), in numpy or, for
        a tensor, with torch where the tensor is (one multiply and one add per pixel)."""
        steps = self.pixel_steps()
        if steps is None:
            raise ValueError("uint8 crops given to a model whose preprocessing is not reproduced")
        if isinstance(crops, np.ndarray):
            return steps.normalize(crops)
        if crops.device not in self._scale_offset:  # made once per device, not per batch
            import torch

            std = torch.tensor(steps.std, dtype=torch.float32).view(1, 3, 1, 1)
            mean = torch.tensor(steps.mean, dtype=torch.float32).view(1, 3, 1, 1)
            self._scale_offset[crops.device] = (
                (1 / (255 * std)).to(crops.device),
                (-mean / std).to(crops.device),
            )
        scale, offset = self._scale_offset[crops.device]
        return crops.permute(0, 3, 1, 2).float().mul_(scale).add_(offset)

    def _autocast(self, model: Any) -> Any:
        import torch

        if self.device.kind == "cpu":
            return contextlib.nullcontext()
        dtype = torch.float16
        if self.device.kind == "cuda" and not _fast_fp16(_device_of(model)):
            dtype = torch.bfloat16
        return torch.autocast(self.device.kind, dtype=dtype)

    def agreement(self, batch: Any) -> float:
        """Mean cosine between this encoder's vectors and fp32 ones for the same images (1.0
        for fp32 itself): the check an index runs before it trusts int8. The fp32 vectors are
        those an fp32 `add` here stores: the torch model's, or without torch the fp32 image
        tower's (the same export the int8 tower was quantised from, itself checked against
        torch at cosine >= image_tower.MIN_COSINE when it was prepared)."""
        if self.int8 is None:
            return 1.0
        pixels = np.asarray(batch)
        pixels = self._normalize(pixels) if _is_crops(pixels) else pixels
        return float(np.mean(np.sum(self._fp32(pixels) * self.int8(pixels), axis=1)))

    def _fp32(self, pixels: np.ndarray) -> np.ndarray:
        """fp32 vectors of the model's input `pixels`, from torch when this encoder has it."""
        if self.model is not None:
            return self._encode_on(self.model, pixels)
        tower = image_tower.cached(self.identity, keep=False)  # once, for the int8 check
        if tower is not None:
            return tower.encode(pixels)
        return self.torch_model().encode_images(pixels)  # the tower went meanwhile

    def resize_for_model(self, image: Any) -> Any:
        """The preprocessing's resize step alone (PIL in, PIL out): the picture at the size the
        model sees it, before crop and normalisation. Preprocessing the result again gives the
        same tensor as preprocessing `image` (PIL returns a same-size resize unchanged)."""
        steps = self.pixel_steps()
        if steps is not None:
            return steps.resized(image)
        from torchvision.transforms import Resize  # a preprocessing not reproduced as data

        for step in getattr(self.preprocess, "transforms", ()):
            if isinstance(step, Resize):
                return step(image)
        return image

    def stack(self, tensors: Sequence[Any]) -> Any:
        """Preprocessed images (tensors or arrays, whichever `preprocess` made) as one batch of
        the kind this encoder runs."""
        if self.model is None:
            return np.stack([np.asarray(t) for t in tensors])
        import torch

        return torch.stack([torch.as_tensor(t) for t in tensors])

    def encode_preprocessed(self, tensors: Sequence[Any]) -> np.ndarray:
        """Encode images already passed through `preprocess` (callers need no torch import)."""
        return self.encode_images(self.stack(tensors))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if self.model is None:
            return self.torch_model().encode_texts(texts)
        import torch

        tokens = self.tokenizer(list(texts))
        with torch.inference_mode(), self._autocast(self.model):
            if self.device.kind != "cpu":
                tokens = tokens.to(_device_of(self.model))
            feats = self.model.encode_text(tokens)
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32, copy=False)


#: Encoders loaded in this process, by (identity, devices, precision).
_LOADED: dict[tuple, Encoder] = {}


def _embed_dim(model: Any) -> int:
    """The embedding width, read off the model (no forward pass needed)."""
    projection = getattr(model, "text_projection", None)
    if projection is not None and hasattr(projection, "shape"):
        return int(projection.shape[-1])
    if projection is not None and hasattr(projection, "out_features"):
        return int(projection.out_features)
    return int(model.visual.output_dim)


def _device_of(model: Any) -> Any:
    return next(model.parameters()).device


def _fast_fp16(device: Any) -> bool:
    import torch

    major, _ = torch.cuda.get_device_capability(device)
    return major >= 7  # tensor cores: Volta and newer


def _model_image_size(model: Any) -> int:
    size = getattr(model.visual, "image_size", 224)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def _is_crops(batch: Any) -> bool:
    """Whether a batch holds uint8 crops (N, H, W, 3) rather than the model's float input."""
    return len(batch.shape) == 4 and batch.shape[-1] == 3 and str(batch.dtype).endswith("uint8")
