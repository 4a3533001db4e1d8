"""Text queries without torch: the model's text tower in ONNX and its tokenizer in HF tokenizers.

A text query in a new process (`idx search --text`) used to import torch and open_clip, about
3.5 s of a 5 s query on 2 cores, to encode a few words. The first process that has the model
loaded (an `add`, or a text query) exports the text tower to ONNX (fp32) and open_clip's BPE
vocabulary to a `tokenizers` file, checks both against open_clip on probe texts (the same tokens,
cosine >= MIN_COSINE) and caches them under config.cache_dir(); later processes encode text with
ONNX Runtime and `tokenizers`, which import in ~0.2 s (bench/README.md, "Start-up"). ONNX
Runtime also runs ViT-B-32's text tower faster than torch for one query (35 vs 46 ms here).

Only open_clip's own BPE tokenizer (`SimpleTokenizer`, lower-case cleaning) is converted; other
tokenizers (Hugging Face text towers, SigLIP) keep the torch path. Texts whose characters the two
tokenizers' Unicode tables might split differently (combining marks, control and private-use
characters, characters outside the Basic Multilingual Plane) also take the torch path:
`eligible` says which; over 150,000 random eligible strings the tokens were identical.

The cached files are derived data, keyed by the model's identity and the library versions; a
model that cannot be converted is recorded as such (`refused.json`) and not tried again.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import shutil
import tempfile
import time
import unicodedata
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from idx import config
from idx.indexer.identity import ModelIdentity

log = logging.getLogger(__name__)

#: Mean cosine to the torch text tower below which an export is not used.
MIN_COSINE = 0.9999
#: Bump when the cached files' layout changes.
FORMAT = 1
#: Texts every export is checked on: words, punctuation, accents, other scripts, HTML entities,
#: contractions, numbers, and one longer than the context (truncation).
PROBES = (
    "a photo of a red apple",
    "A DOG, running on the beach!",
    "café crème brûlée, naïve déjà vu",
    "don't we'll I'm they've it's",
    "tom &amp; jerry &lt;3",
    "3 cats and 12 dogs in 2024",
    "ключ, 鍵, 열쇠, κλειδί",
    "emoji-free: ok?!... (yes) [no] {maybe}",
    "word " * 100,
)


class TextTower:
    """A cached text tower: `encode(texts)` gives L2-normalised float32 vectors."""

    def __init__(self, folder: Path):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        meta = json.loads((folder / "meta.json").read_text())
        self.context_length = int(meta["context_length"])
        self.sot, self.eot = int(meta["sot"]), int(meta["eot"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(folder / "text.onnx"), options, providers=["CPUExecutionProvider"]
        )

    def tokens(self, texts: Sequence[str]) -> np.ndarray:
        """open_clip's token ids for `texts` (each must be `eligible`): start, BPE tokens, end,
        truncated to the context (the last kept token becoming the end) and padded with 0."""
        out = np.zeros((len(texts), self.context_length), np.int64)
        for row, text in enumerate(texts):
            ids = self.tokenizer.encode(clean(text), add_special_tokens=False).ids
            ids = [self.sot, *ids, self.eot]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot
            out[row, : len(ids)] = ids
        return out

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        feats = self.session.run(None, {"tokens": self.tokens(texts)})[0]
        norms = np.linalg.norm(feats, axis=1, keepdims=True)
        return (feats / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def clean(text: str) -> str:
    """open_clip's `_clean_lower`: ftfy, HTML entities unescaped twice, whitespace folded,
    lower case."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).lower()


def eligible(text: str) -> bool:
    """Whether the torch-free tokenizer splits `text` exactly as open_clip does: letters,
    digits, punctuation, symbols and spaces of the Basic Multilingual Plane (and not the long
    s, which open_clip's case-insensitive pattern reads as "s")."""
    return all(
        ord(c) < 0x10000 and unicodedata.category(c)[0] in "LNPSZ" and c != "ſ" for c in clean(text)
    )


def cached(identity: ModelIdentity) -> TextTower | None:
    """The text tower prepared for this model on this machine, or None (not prepared yet, the
    model cannot be converted, ONNX Runtime or tokenizers missing, or IDX_TEXT_TOWER=0)."""
    folder = _folder(identity)
    if folder is None or not (folder / "meta.json").is_file():
        return None
    try:
        return TextTower(folder)
    except Exception as exc:  # a damaged cache entry: drop it, the next loaded model rebuilds it
        log.warning("text tower cache %s is unusable (%s); removing it", folder, exc)
        shutil.rmtree(folder, ignore_errors=True)
        return None


def prepare(identity: ModelIdentity, model: Any, tokenizer: Any) -> bool:
    """Export and check the text tower of a loaded open_clip `model` once per model and
    machine; True when a usable one is cached (now or before)."""
    folder = _folder(identity)
    if folder is None:
        return False
    if (folder / "meta.json").is_file():
        return True
    if (folder.parent / f"{folder.name}.refused.json").is_file():
        return False
    start = time.perf_counter()
    reason = _unsupported(model, tokenizer)
    if reason is None:
        try:
            reason = _build(folder, model, tokenizer)
        except OSError as exc:  # the cache is not writable, the disk full: try another time
            log.warning("could not prepare the text tower in %s: %s", folder, exc)
            return False
        except Exception as exc:  # an architecture the exporter cannot trace: keep torch
            reason = f"export failed: {type(exc).__name__}: {exc}"
    if reason is not None:
        log.info("text queries keep the torch path for %s: %s", identity.name, reason)
        folder.parent.mkdir(parents=True, exist_ok=True)
        refused = folder.parent / f"{folder.name}.refused.json"
        refused.write_text(json.dumps({"model": identity.name, "reason": reason}))
        return False
    log.info(
        "prepared the text tower of %s in %.1f s: %s",
        identity.name,
        time.perf_counter() - start,
        folder,
    )
    return True


def _folder(identity: ModelIdentity) -> Path | None:
    if not config.text_tower():
        return None
    try:
        import onnxruntime
        import tokenizers
    except ImportError:
        return None
    versions = f"{FORMAT}/{onnxruntime.__version__}/{tokenizers.__version__}"
    key = hashlib.sha256((identity.key() + versions).encode()).hexdigest()[:16]
    name = os.path.basename(identity.name).removesuffix(".json")
    return config.cache_dir() / "text" / f"{name}-{key}"


def _unsupported(model: Any, tokenizer: Any) -> str | None:
    if type(tokenizer).__name__ != "SimpleTokenizer":
        return f"its tokenizer is {type(tokenizer).__name__}, not open_clip's BPE tokenizer"
    clean_fn = getattr(tokenizer, "clean_fn", None)
    if getattr(clean_fn, "__name__", "") != "_clean_lower" or tokenizer.reduction_fn is not None:
        return "its tokenizer cleans or reduces text in a way this export does not reproduce"
    if not hasattr(model, "encode_text"):
        return "the model has no encode_text"
    return None


def _build(folder: Path, model: Any, tokenizer: Any) -> str | None:
    """Write text.onnx, tokenizer.json and meta.json into `folder`, or return why not."""
    import torch

    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        _tokenizer_file(tokenizer).save(str(work / "tokenizer.json"))
        meta = {
            "context_length": int(tokenizer.context_length),
            "sot": int(tokenizer.sot_token_id),
            "eot": int(tokenizer.eot_token_id),
        }
        (work / "meta.json").write_text(json.dumps(meta))
        cpu_model = model if _on_cpu(model) else _cpu_copy(model)
        probe_tokens = tokenizer(list(PROBES))
        # Not under inference_mode: there torch takes a fused attention kernel ONNX cannot export.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _text_module(cpu_model).eval(),
                (probe_tokens[:2],),
                str(work / "text.onnx"),
                input_names=["tokens"],
                output_names=["features"],
                dynamic_axes={"tokens": {0: "batch"}, "features": {0: "batch"}},
                dynamo=False,
                opset_version=17,
            )
        tower = TextTower(work)
        if not np.array_equal(tower.tokens(PROBES), probe_tokens.numpy()):
            return "its tokens differ from open_clip's on the probe texts"
        with torch.inference_mode():
            reference = torch.nn.functional.normalize(cpu_model.encode_text(probe_tokens), dim=-1)
        agreement = float(np.mean(np.sum(reference.numpy() * tower.encode(PROBES), axis=1)))
        if agreement < MIN_COSINE:
            return f"the export agrees with torch at mean cosine {agreement:.6f} < {MIN_COSINE}"
        del tower
        try:
            os.replace(work, folder)
        except OSError:  # another process prepared it meanwhile
            if not (folder / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return None


def _tokenizer_file(tokenizer: Any) -> Any:
    """open_clip's BPE (vocabulary, merges in rank order, its split pattern, byte-level
    alphabet, end-of-word suffix) as a `tokenizers.Tokenizer`."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    merges = sorted(tokenizer.bpe_ranks, key=tokenizer.bpe_ranks.get)
    bpe = models.BPE(
        vocab=tokenizer.encoder,
        merges=merges,
        continuing_subword_prefix="",
        end_of_word_suffix="</w>",
        fuse_unk=False,
    )
    special = [tokenizer.decoder[i] for i in tokenizer.all_special_ids]
    pattern = "|".join(special) + r"|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
    result = Tokenizer(bpe)
    result.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    result.add_special_tokens(special)
    return result


def _on_cpu(model: Any) -> bool:
    return all(p.device.type == "cpu" for p in model.parameters())


def _cpu_copy(model: Any) -> Any:
    import copy

    return copy.deepcopy(model).float().cpu()


def _text_module(model: Any) -> Any:
    """The text half of an open_clip model as a torch module, for the exporter."""
    import torch

    class TextOnly(torch.nn.Module):
        def __init__(self, clip: Any):
            super().__init__()
            self.clip = clip

        def forward(self, tokens: Any) -> Any:
            return self.clip.encode_text(tokens)

    return TextOnly(model)
