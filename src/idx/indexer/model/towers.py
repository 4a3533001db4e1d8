"""A model's towers in ONNX: the cache they live in, built once and loaded once per process.

The text tower (indexer.model.text_tower), the fp32 image tower (indexer.model.image_tower) and the int8 image
tower (indexer.model.int8) are derived files under config.cache_dir(), keyed by the model's identity
and the library versions. A tower is built by a process that has the torch model loaded and
written atomically (a folder renamed into place). The fp32 towers are checked against the model
before they are kept, and a model that cannot have them is recorded as refused and not tried
again; IDX_ONNX=0 turns them off (every command then runs the model in torch). int8 is asked for
by name, so it is always built, and checked on each index's own images (indexer.model.precision).

A tower's weights lie in a file beside its graph (`<name>.onnx.data`), which ONNX Runtime maps
instead of parsing and copying: ViT-B-32's text tower opens in half the CPU time and at half the
peak memory (0.24 s and 227 MB instead of 0.48 s and 420 MB; bench/README.md, "Start-up"); and
they are written a tensor at a time (indexer.model.onnx_file), not held three times over.
Preparing one is a minute's work or less, done once per model and machine; it is announced on
the log at progress.NOTE (the CLI's `note:` lines), since it would otherwise look like a hang.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from idx import config
from idx.indexer.model.identity import ModelIdentity
from idx.progress import NOTE

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Bump when the cached files' layout changes (2: the weights in a file beside the graph).
FORMAT = 2
#: Parameters a tower's preparation (export and check) gets through per second on a 2-core CPU,
#: for the estimate its note gives: ViT-B-32's image tower (88M) took 2.9 s on an idle machine,
#: its text tower (63M) 2.0 s; a busy one takes two or three times that.
PARAMETERS_PER_SECOND = 15e6
#: A preparation expected to take this long or more is a note (the CLI shows it); a shorter one
#: (a small model's) would not be noticed, and is logged at INFO (idx -v).
NOTE_FROM_S = 2.0
#: What each tower is for, in its note.
PURPOSE = {
    "text": "so that text queries start without torch",
    "image": "so that later runs start without torch",
    "int8": "for --precision int8",
}
#: Towers loaded in this process, by cache folder.
_LOADED: dict[Path, Any] = {}


def folder(kind: str, identity: ModelIdentity, *, optional: bool = True) -> Path | None:
    """Where the `kind` tower ("text", "image", "int8") of this model is (or would be) cached;
    None when ONNX Runtime (or, for text, tokenizers) is missing, or for an `optional` tower
    (the fp32 ones, which only save start-up time) when IDX_ONNX=0."""
    if optional and not config.onnx_towers():
        return None
    try:
        import onnxruntime

        versions = f"{FORMAT}/{onnxruntime.__version__}"
        if kind == "text":
            import tokenizers

            versions += f"/{tokenizers.__version__}"
    except ImportError:
        return None
    key = hashlib.sha256((identity.key() + versions).encode()).hexdigest()[:16]
    name = os.path.basename(identity.name).removesuffix(".json")
    return config.cache_dir() / kind / f"{name}-{key}"


def load(
    kind: str,
    identity: ModelIdentity,
    opener: Callable[[Path], T],
    *,
    optional: bool = True,
    keep: bool = True,
) -> T | None:
    """The cached tower opened with `opener` (once per process), or None when there is none; a
    damaged one is removed (the next process with the model loaded builds it again).
    `keep=False`: for one use (a check), not held for the rest of the process when it was
    not open already."""
    where = folder(kind, identity, optional=optional)
    if where is None or not (where / "meta.json").is_file():
        return None
    if where in _LOADED:
        return _LOADED[where]
    try:
        opened = opener(where)
    except Exception as exc:  # noqa: BLE001 - any damage: fall back to the model
        discard(kind, where, exc)
        return None
    if keep:
        _LOADED[where] = opened
    return opened


def discard(kind: str, where: Path, damage: Exception) -> None:
    """Remove a damaged tower folder, saying why; the next process with the model loaded
    prepares it again."""
    log.warning("%s tower cache %s is unusable (%s); removing it", kind, where, damage)
    shutil.rmtree(where, ignore_errors=True)


def build(where: Path, write: Callable[[Path], str | None]) -> str | None:
    """Make the tower folder `where` atomically: `write(work_folder)` writes its files
    (meta.json last) and returns None, or why there can be none (then nothing is kept). Its
    exceptions propagate; a folder another process made meanwhile is kept."""
    where.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{where.name}.", dir=where.parent))
    try:
        reason = write(work)
        if reason is None:
            try:
                os.replace(work, where)
            except OSError:  # another process prepared it meanwhile
                if not (where / "meta.json").is_file():
                    raise
        return reason
    finally:
        shutil.rmtree(work, ignore_errors=True)


def prepare(
    kind: str,
    identity: ModelIdentity,
    write: Callable[[Path], str | None],
    *,
    parameters: int = 0,
) -> bool:
    """Build an optional (fp32) tower once per model and machine (`build`); a model that cannot
    have one is recorded as refused and not tried again. True when a usable tower is cached
    (now or before). `parameters`, the tower's, sizes the estimate its note gives."""
    where = folder(kind, identity)
    if where is None:
        return False
    if (where / "meta.json").is_file():
        return True
    refused = where.parent / f"{where.name}.refused.json"
    if refused.is_file():
        return False
    announce(kind, identity, seconds_for(parameters))
    start = time.perf_counter()
    try:
        reason = build(where, write)
    except OSError as exc:  # the cache is not writable, the disk full: try another time
        log.warning("could not prepare the %s tower in %s: %s", kind, where, exc)
        return False
    except Exception as exc:  # noqa: BLE001 - an architecture the exporter cannot trace
        reason = f"export failed: {type(exc).__name__}: {exc}"
    if reason is not None:
        log.info("%s: no %s tower, the model runs in torch (%s)", identity.name, kind, reason)
        refused.write_text(json.dumps({"model": identity.name, "reason": reason}))
        return False
    log.info(
        "prepared the %s tower of %s in %.1f s: %s",
        kind,
        identity.name,
        time.perf_counter() - start,
        where,
    )
    return True


def announce(kind: str, identity: ModelIdentity, seconds: float) -> None:
    """Say that a tower is being prepared: what, why, that it happens once, about how long (a
    note when that is NOTE_FROM_S or more)."""
    log.log(
        NOTE if seconds >= NOTE_FROM_S else logging.INFO,
        "preparing the %s tower of %s %s (once per model on this machine, ~%d s)",
        kind,
        os.path.basename(identity.name),
        PURPOSE.get(kind, ""),
        round(seconds) if seconds < 10 else 5 * round(seconds / 5),
    )


def parameters(module: Any) -> int:
    """How many parameters a torch module holds (for `prepare`'s estimate)."""
    return sum(p.numel() for p in module.parameters())


def seconds_for(parameters: int) -> float:
    """About how long exporting and checking a tower of this many parameters takes here."""
    return parameters / PARAMETERS_PER_SECOND


def export(module: Any, example: Any, path: Path, input_name: str) -> None:
    """`module` (torch, fp32, on the CPU) to ONNX at `path`, batch dimension dynamic; output
    "features"; its weights in `<path>.data` beside it (indexer.model.onnx_file)."""
    from idx.indexer.model import onnx_file

    onnx_file.write(module, example, path, input_name)


def session(path: Path, *, spinning: bool = True) -> Any:
    """An ONNX Runtime session on the CPU. Without `spinning` its threads sleep between runs
    instead of busy-waiting: for occasional queries beside other work (a reader beside a running
    `add`, `idx serve`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def unit(features: Any) -> Any:
    """Rows scaled to unit length, float32."""
    import numpy as np

    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def cpu_model(model: Any) -> Any:
    """`model` itself when it is on the CPU in fp32, else a CPU fp32 copy (for exporting)."""
    if all(p.device.type == "cpu" for p in model.parameters()):
        return model
    import copy

    return copy.deepcopy(model).float().cpu()
