"""The weights of a model: whether they can be had now (a file, the cache, a reachable hub),
loading them with open_clip (never unpickling code), and random weights for the demo and tests.

open_clip, torch and huggingface_hub are imported inside the functions: `import` stays light.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from idx import config
from idx.errors import ModelLoadError, UsageError
from idx.indexer.model import known
from idx.indexer.model.identity import UNTRAINED_KEY, ModelIdentity


def _hub_reachable(url: str) -> bool:
    """Whether the hub answers within HUB_TIMEOUT_S (name lookup included, which the socket's
    own timeout does not bound); never tried when huggingface_hub is offline (HF_HUB_OFFLINE,
    which it reads once, when it is first imported: a later change would not stop its own
    downloads either)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(url).hostname or "huggingface.co"

    answered: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, 443), timeout=config.HUB_TIMEOUT_S):
                answered.append(True)
        except OSError:
            answered.append(False)

    # A daemon thread: a name lookup that hangs neither holds this call nor the process's exit.
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(config.HUB_TIMEOUT_S)
    return bool(answered and answered[0])


def _cached_pretrained(name: str, tag: str) -> bool:
    """Whether open_clip can load these weights without the network."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(name)
        close = known.close_names(tag, tags)
        raise UsageError(
            f"open_clip has no pretrained weights {tag!r} for {name!r}"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
            + f"; its weights: {', '.join(tags) or 'none'}"
        )
    if "file" in cfg:
        return True
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hub)
        names = [filename] if filename else []
        names += ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for candidate in names:
            hit = try_to_load_from_cache(repo_id=repo, filename=candidate)
            if isinstance(hit, str):
                return True
    url = cfg.get("url", "")
    if url:
        cache = Path(os.path.expanduser("~/.cache/clip"))
        if (cache / os.path.basename(url)).is_file():
            return True
    return False


def available(identity: ModelIdentity) -> bool:
    """Whether loading can succeed now: local weights, cached ones, or a reachable hub."""
    if identity.checkpoint:
        return Path(identity.checkpoint).is_file()
    if not identity.pretrained:
        return True
    if _cached_pretrained(identity.name, identity.pretrained):
        return True
    import open_clip

    cfg = open_clip.get_pretrained_cfg(identity.name, identity.pretrained)
    return _hub_reachable("https://huggingface.co" if cfg.get("hf_hub") else cfg.get("url", ""))


#: The model configs given to open_clip in this process: name -> the JSON text registered.
_registered: dict[str, str] = {}
_registered_lock = threading.Lock()
_config_folder: tempfile.TemporaryDirectory[str] | None = None


def _register_config(name: str, model_config: dict[str, Any]) -> None:
    """`model_config` known to open_clip as `name`, through its public add_model_config. That
    reads files and names each config by its file's stem, so the config is written to
    `<a folder of this process>/<name>.json`, kept while the process runs (open_clip rereads
    every registered file at each registration: a name is registered again only if its config
    changed)."""
    global _config_folder
    import open_clip

    text = json.dumps(model_config, sort_keys=True)
    if Path(name).name != name or Path(f"{name}.json").stem != name:
        raise ModelLoadError(
            f"model name {name!r} cannot name a config file for open_clip; give the model "
            "as --model CONFIG.json, named for the model, with --checkpoint FILE"
        )
    with _registered_lock:
        if _registered.get(name) == text:
            return
        if _config_folder is None:
            _config_folder = tempfile.TemporaryDirectory(prefix="idx-model-configs-")
        path = Path(_config_folder.name) / f"{name}.json"
        path.write_text(text, encoding="utf-8")
        open_clip.add_model_config(path)
        _registered[name] = text


def _preprocess_overrides(tag_cfg: dict[str, Any]) -> dict[str, Any]:
    """Preprocessing that a pretrained tag prescribes, for its weights loaded from a file."""
    keys = {
        "mean": "image_mean",
        "std": "image_std",
        "interpolation": "image_interpolation",
        "resize_mode": "image_resize_mode",
    }
    return {arg: tag_cfg[k] for k, arg in keys.items() if k in tag_cfg}


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - huggingface_hub ships with open_clip
        return "~/.cache/huggingface/hub"


def load(identity: ModelIdentity) -> tuple[Any, Any, Any]:
    """(model, preprocess, tokenizer) of `identity` on the CPU, in eval mode: from its
    checkpoint file, or its pretrained weights (cached, else downloaded when the hub answers);
    ModelLoadError or UsageError naming the fix when they cannot be had."""
    import open_clip

    name = identity.name
    if identity.model_config is not None:
        _register_config(name, identity.model_config)
    elif name not in open_clip.list_models() and not name.startswith(("hf-hub:", "local-dir:")):
        raise UsageError(
            f"unknown model {name!r}; pass an open_clip model name (see "
            "open_clip.list_models()) or the path of a model config JSON"
        )
    tag_cfg = (
        open_clip.get_pretrained_cfg(name, identity.pretrained)
        if identity.pretrained and identity.model_config is None
        else {}
    )
    try:
        if identity.checkpoint:
            if not Path(identity.checkpoint).is_file():
                raise ModelLoadError(
                    f"checkpoint {identity.checkpoint} recorded in the index is missing; "
                    "pass its new location with --checkpoint FILE"
                )
            model, _, preprocess = open_clip.create_model_and_transforms(
                name,
                pretrained=identity.checkpoint,
                force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
                weights_only=True,
                **_preprocess_overrides(tag_cfg),
            )
        else:
            if not available(identity):
                raise ModelLoadError(
                    f"cannot download weights {name}/{identity.pretrained}: no network "
                    f"and not in the Hugging Face cache ({_hf_cache_dir()}). Run once "
                    "with network access to cache them, or pass local weights with "
                    "--model NAME|CONFIG.json --checkpoint FILE"
                )
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=identity.pretrained
            )
    except (ModelLoadError, UsageError):
        raise
    except pickle.UnpicklingError as exc:
        raise ModelLoadError(
            f"could not load model {identity.describe()}: the checkpoint holds pickled code or "
            "objects, which idx never executes (weights_only). Convert it to a plain state "
            "dict or .safetensors file"
        ) from exc
    except (RuntimeError, OSError, ValueError, KeyError, AssertionError) as exc:
        # open_clip asserts on a checkpoint of another shape ("text pos_embed width changed!"),
        # and torch raises a size mismatch: the first line names what differs.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        fix = (
            "; give the model it was saved from with --model NAME|CONFIG.json"
            if identity.checkpoint
            else ""
        )
        raise ModelLoadError(f"could not load model {identity.describe()}: {first}{fix}") from exc
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
    return model, preprocess, tokenizer


def save_random_checkpoint(model_config: Path, out: Path, seed: int = 0) -> Path:
    """Write random open_clip weights for a config, marked untrained (demo and tests)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    cfg = json.loads(Path(model_config).read_text())
    name = Path(model_config).stem
    _register_config(name, cfg)
    torch.manual_seed(seed)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # open_clip warns that the weights are random: that is the point
    try:
        model = open_clip.create_model(name, pretrained=None)
    finally:
        root.setLevel(level)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={UNTRAINED_KEY: "true"})
    os.replace(tmp, out)
    return out
