"""Which model an index uses: what the user asked for (spec), what the index stores (identity),
and how the two combine (flag > IDX_* env > what the index stored > config default).

Nothing here imports torch; open_clip only to look up a model name's pretrained tags.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from idx import config
from idx.errors import ModelMismatchError, UsageError
from idx.indexer.model import known

#: safetensors metadata key that marks a checkpoint as random (untrained) weights.
UNTRAINED_KEY = "idx_untrained"
TINY_CONFIG = "idx-tiny"


def tiny_config_path() -> Path:
    """The shipped config of the tiny model used by `idx demo` offline and by the tests."""
    return Path(str(resources.files("idx.indexer.model") / "configs" / f"{TINY_CONFIG}.json"))


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked for: an open_clip name or config JSON, a pretrained tag, a checkpoint."""

    model: str = config.DEFAULT_MODEL
    pretrained: str | None = None
    checkpoint: str | None = None
    #: A config already read (e.g. the one stored in an index); `model` is then its name.
    model_config: dict[str, Any] | None = None
    #: sha256 of `checkpoint` when already known (skips hashing a large file again).
    checkpoint_sha256: str | None = None


@dataclass
class ModelIdentity:
    """What the index stores about its model, so that reopening uses the same one."""

    name: str
    pretrained: str | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    model_config: dict[str, Any] | None = None
    embed_dim: int | None = None
    image_size: int | None = None
    untrained: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def weights(self) -> str:
        if self.checkpoint_sha256:
            return f"checkpoint sha256:{self.checkpoint_sha256[:12]}"
        return f"pretrained {self.pretrained}" if self.pretrained else "random"

    def describe(self) -> str:
        text = f"{self.name} ({self.weights()})"
        return text + " [UNTRAINED random weights]" if self.untrained else text

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelIdentity:
        return cls(**json.loads(text))

    def key(self) -> str:
        """What makes two identities the same model (for caching a loaded one)."""
        return json.dumps(
            [self.name, self.pretrained, self.checkpoint_sha256, self.model_config], sort_keys=True
        )

    def same_model(self, other: ModelIdentity) -> bool:
        if self.name != other.name or (self.model_config or None) != (other.model_config or None):
            return False
        if self.checkpoint_sha256 or other.checkpoint_sha256:
            return self.checkpoint_sha256 == other.checkpoint_sha256
        return self.pretrained == other.pretrained


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_untrained_flag(checkpoint: Path) -> bool:
    if checkpoint.suffix != ".safetensors":
        return False
    from safetensors import safe_open

    with safe_open(str(checkpoint), framework="numpy") as fh:  # "pt" would import torch (2 s)
        return (fh.metadata() or {}).get(UNTRAINED_KEY) == "true"


def identify(spec: ModelSpec) -> ModelIdentity:
    """Resolve a spec to the identity the index stores, without loading torch."""
    model_config = spec.model_config
    name = spec.model
    if model_config is None and spec.model == TINY_CONFIG:
        model_config = _read_config(tiny_config_path())  # shipped config, named as status shows it
    elif model_config is None and spec.model.endswith(".json"):
        model_config = _read_config(Path(spec.model))
        name = Path(spec.model).stem
    if model_config is None:
        known.check_name(name)
    pretrained = spec.pretrained
    if model_config is None and not spec.checkpoint and not pretrained:
        pretrained = default_pretrained(name)
    ident = ModelIdentity(name=name, model_config=model_config, pretrained=pretrained)
    if model_config:
        ident.embed_dim = int(model_config["embed_dim"])
        ident.image_size = _image_size(model_config)
    if spec.checkpoint:
        ckpt = Path(spec.checkpoint).expanduser().resolve()
        if not ckpt.is_file():
            raise UsageError(
                f"checkpoint {spec.checkpoint} does not exist; give the path of an open_clip "
                "weights file (.safetensors, .pt or .bin)"
            )
        st = ckpt.stat()
        ident.checkpoint = str(ckpt)
        ident.checkpoint_sha256 = spec.checkpoint_sha256 or file_sha256(ckpt)
        ident.extra = {"checkpoint_bytes": st.st_size, "checkpoint_mtime_ns": st.st_mtime_ns}
        known.check_fits(name, model_config or known.model_config(name), ckpt)
        ident.untrained = _read_untrained_flag(ckpt)
    elif model_config is not None:
        raise UsageError(
            f"model config {spec.model} has no weights: add --checkpoint FILE "
            "(an open_clip state dict, .safetensors or .pt)"
        )
    return ident


def _read_config(cfg_path: Path) -> dict[str, Any]:
    if not cfg_path.is_file():
        raise UsageError(
            f"model config {cfg_path} does not exist; pass an open_clip model name "
            "(e.g. ViT-B-32) or the path of an open_clip config JSON"
        )
    try:
        model_config = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"model config {cfg_path} is not valid JSON: {exc}") from exc
    if not isinstance(model_config, dict) or not {"embed_dim", "vision_cfg", "text_cfg"} <= set(
        model_config
    ):
        raise UsageError(
            f"model config {cfg_path} lacks embed_dim, vision_cfg or text_cfg; "
            "it must be an open_clip model config"
        )
    return model_config


def default_pretrained(name: str) -> str | None:
    """The weights used for a model named without --pretrained: OpenAI's where they exist."""
    if name == config.DEFAULT_MODEL:
        return config.DEFAULT_PRETRAINED
    import open_clip

    tags = [tag for model, tag in open_clip.list_pretrained() if model == name]
    if not tags:
        return None
    return "openai" if "openai" in tags else tags[0]


def _image_size(model_config: dict[str, Any]) -> int:
    size = model_config.get("vision_cfg", {}).get("image_size", 224)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def check_compatible(stored: ModelIdentity, asked: ModelIdentity, index_dir: Path) -> None:
    if not stored.same_model(asked):
        raise ModelMismatchError(
            f"index {index_dir} was built with {stored.describe()}, not {asked.describe()}; "
            f"use that model (omit --model/--pretrained/--checkpoint to reuse it), or start a "
            f"new index for the other model with --index NEW_DIR"
        )


def resolve(
    stored: ModelIdentity | None,
    model: str | None,
    pretrained: str | None,
    checkpoint: str | None,
    *,
    index_dir: Path,
) -> ModelIdentity:
    """The model to use, from what was asked (flag or IDX_* env; None where nothing was) and
    what the index stored: the stored model unless something else was asked, the default model
    for a new index. A different model than the stored one is refused; the stored one named
    again with its checkpoint at a new path comes back with that path."""
    if not (model or pretrained or checkpoint):
        return stored or identify(ModelSpec(config.DEFAULT_MODEL, config.DEFAULT_PRETRAINED))
    ident = identify(_spec(stored, model, pretrained, checkpoint))
    if stored is None:
        return ident
    check_compatible(stored, ident, index_dir)
    if ident.checkpoint and ident.checkpoint != stored.checkpoint:
        return ModelIdentity(**{**asdict(stored), "checkpoint": ident.checkpoint})
    return stored


def _spec(
    stored: ModelIdentity | None,
    model: str | None,
    pretrained: str | None,
    checkpoint: str | None,
) -> ModelSpec:
    spec = ModelSpec(
        model=model or config.DEFAULT_MODEL, pretrained=pretrained, checkpoint=checkpoint
    )
    if stored is None:
        return spec
    if model is None:
        spec = ModelSpec(stored.name, pretrained, checkpoint, stored.model_config)
    same_name = spec.model == stored.name or Path(spec.model).stem == stored.name
    if same_name and pretrained is None and checkpoint is None:
        known = stored.checkpoint and _unchanged_file(stored.checkpoint, stored)
        spec = ModelSpec(
            spec.model,
            stored.pretrained,
            stored.checkpoint,
            spec.model_config,
            stored.checkpoint_sha256 if known else None,
        )
    elif checkpoint and stored.checkpoint and _unchanged_file(checkpoint, stored):
        spec = ModelSpec(
            spec.model, spec.pretrained, checkpoint, spec.model_config, stored.checkpoint_sha256
        )
    return spec


def _unchanged_file(path: str, stored: ModelIdentity) -> bool:
    """Whether `path` is the stored checkpoint, untouched (so its hash need not be recomputed)."""
    try:
        p = Path(path).expanduser().resolve()
        st = p.stat()
    except OSError:
        return False
    return (
        str(p) == stored.checkpoint
        and stored.extra.get("checkpoint_bytes") == st.st_size
        and stored.extra.get("checkpoint_mtime_ns") == st.st_mtime_ns
    )
