"""Which models exist and whether a checkpoint fits one, read from files without importing torch
or open_clip (seconds): open_clip's shipped model configs, idx's own, and a .safetensors
checkpoint's tensor shapes. A mistyped name or a checkpoint of another model is then one clear
message within a second, with the names that would fit, instead of a traceback after loading."""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from idx.errors import UsageError

#: Names open_clip resolves without a config file of its own.
PREFIXES = ("hf-hub:", "local-dir:")


@lru_cache(maxsize=1)
def config_files() -> dict[str, Path]:
    """Model name -> its config JSON: open_clip's (its model_configs folder) and idx's own."""
    found: dict[str, Path] = {}
    spec = importlib.util.find_spec("open_clip")
    for folder in spec.submodule_search_locations or [] if spec else []:
        configs = Path(folder) / "model_configs"
        if configs.is_dir():
            found.update({p.stem: p for p in configs.glob("*.json")})
    here = Path(__file__).resolve().parent / "configs"
    found.update({p.stem: p for p in here.glob("*.json")})
    return found


def model_config(name: str) -> dict[str, Any] | None:
    path = config_files().get(name)
    if path is None:
        return None
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def check_name(name: str) -> None:
    """UsageError for a model name open_clip does not know, with the closest known names."""
    if name.startswith(PREFIXES) or not config_files() or name in config_files():
        return
    close = close_names(name, list(config_files()))
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UsageError(
        f"unknown model {name!r}; {hint}give a model open_clip knows (e.g. ViT-B-32, ViT-L-14, "
        'idx-tiny; all of them: python -c "import open_clip; print(open_clip.list_models())") '
        "or the path of a model config JSON"
    )


def close_names(name: str, names: list[str]) -> list[str]:
    """Up to 4 of `names` close to `name`, the closest first, letter case aside: `vit-b-32`
    suggests ViT-B-32 before ViT-S-32."""
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=4, cutoff=0.6)
    return [by_lower[n] for n in close]


def checkpoint_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]] | None:
    """The tensor shapes of a .safetensors checkpoint (read from its header), None for another
    kind of file (.pt, .bin: reading them needs torch). UsageError for a file named .safetensors
    that is not one."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            return {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types, unexported
        if str(path).endswith(".safetensors"):
            raise UsageError(
                f"checkpoint {path} is not a safetensors file ({exc}); give the weights file "
                "itself (.safetensors, .pt or .bin)"
            ) from None
        return None


def _shape_of(cfg: dict[str, Any]) -> dict[str, int]:
    """What a config says about the checkpoint's shapes (the keys it has)."""
    text, vision = cfg.get("text_cfg", {}), cfg.get("vision_cfg", {})
    out = {"embed_dim": cfg.get("embed_dim"), "text width": text.get("width")}
    out |= {"context length": text.get("context_length", 77)}
    out |= {"vision width": vision.get("width"), "patch size": vision.get("patch_size")}
    return {k: int(v) for k, v in out.items() if isinstance(v, int)}


def _shape_in(shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """The same facts read from a checkpoint's tensors (the keys it has)."""
    out: dict[str, int] = {}
    if len(shapes.get("text_projection", ())) == 2:
        out["text width"], out["embed_dim"] = shapes["text_projection"]
    if len(shapes.get("positional_embedding", ())) == 2:
        out["context length"] = shapes["positional_embedding"][0]
    conv = shapes.get("visual.conv1.weight", ())
    if len(conv) == 4:
        out["vision width"], out["patch size"] = conv[0], conv[2]
    return out


def check_fits(name: str, cfg: dict[str, Any] | None, checkpoint: str | os.PathLike[str]) -> None:
    """UsageError when a .safetensors checkpoint's shapes differ from what the model's config
    needs, naming both and the known models it would fit."""
    shapes = checkpoint_shapes(checkpoint)
    if cfg is None or not shapes:
        return
    held, needed = _shape_in(shapes), _shape_of(cfg)
    differ = {k: (held[k], needed[k]) for k in held.keys() & needed.keys() if held[k] != needed[k]}
    if not differ:
        return
    fits = [
        other
        for other in sorted(config_files())
        if (c := model_config(other)) is not None
        and (s := _shape_of(c)).keys() & held.keys()
        and all(s[k] == held[k] for k in s.keys() & held.keys())
    ]
    detail = ", ".join(f"{k} {have} (the model needs {need})" for k, (have, need) in differ.items())
    hint = f"models of its shape: {', '.join(fits[:6])}" if fits else "no known model has its shape"
    raise UsageError(
        f"checkpoint {checkpoint} does not fit model {name}: it holds {detail}; {hint}. Give the "
        "model it was saved from with --model NAME|CONFIG.json"
    )
