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

The cached files are derived data (indexer.model.towers: keyed by the model's identity and the library
versions, built once, a model that cannot be converted recorded as refused).
"""

from __future__ import annotations

import html
import json
import logging
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from idx.indexer.model import towers
from idx.indexer.model.identity import ModelIdentity

log = logging.getLogger(__name__)

#: Mean cosine to the torch text tower below which an export is not used.
MIN_COSINE = 0.9999
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
        from tokenizers import Tokenizer

        meta = json.loads((folder / "meta.json").read_text())
        self.context_length = int(meta["context_length"])
        self.sot, self.eot = int(meta["sot"]), int(meta["eot"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        # Its threads sleep between queries: a reader beside a running `add` (or `idx serve`)
        # must not burn the cores the writer embeds on.
        self.session = towers.session(folder / "text.onnx", spinning=False)

    def tokens(self, texts: Sequence[str]) -> np.ndarray:
        """open_clip's token ids for `texts` (each must be `eligible`): start, BPE tokens, end,
        truncated to the context (the last kept token becoming the end) and padded with 0."""
        return self._tokens([clean(t) for t in texts])

    def encode(self, texts: Sequence[str]) -> np.ndarray | None:
        """L2-normalised float32 vectors of `texts`; None when one of them is not `eligible`
        (the model takes them then)."""
        cleaned = [clean(t) for t in texts]  # once: ftfy is the costly part of a short query
        if not all(map(_splits_alike, cleaned)):
            return None
        return towers.unit(self.session.run(None, {"tokens": self._tokens(cleaned)})[0])

    def _tokens(self, cleaned: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(cleaned), self.context_length), np.int64)
        for row, text in enumerate(cleaned):
            ids = self.tokenizer.encode(text, add_special_tokens=False).ids
            ids = [self.sot, *ids, self.eot]
            if len(ids) > self.context_length:
                ids = ids[: self.context_length]
                ids[-1] = self.eot
            out[row, : len(ids)] = ids
        return out


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
    return _splits_alike(clean(text))


def _splits_alike(cleaned: str) -> bool:
    return all(
        ord(c) < 0x10000 and unicodedata.category(c)[0] in "LNPSZ" and c != "ſ" for c in cleaned
    )


def cached(identity: ModelIdentity) -> TextTower | None:
    """The text tower prepared for this model on this machine, or None (not prepared yet, the
    model cannot be converted, ONNX Runtime or tokenizers missing, or IDX_ONNX=0)."""
    return towers.load("text", identity, TextTower)


def prepare(identity: ModelIdentity, model: Any, tokenizer: Any) -> bool:
    """Export and check the text tower of a loaded open_clip `model` once per model and
    machine; True when a usable one is cached (now or before)."""
    return towers.prepare(
        "text",
        identity,
        lambda work: _unsupported(model, tokenizer) or _build(work, model, tokenizer),
        parameters=_text_parameters(model),
    )


def _text_parameters(model: Any) -> int:
    visual = getattr(model, "visual", None)
    return towers.parameters(model) - (towers.parameters(visual) if visual is not None else 0)


def _unsupported(model: Any, tokenizer: Any) -> str | None:
    if type(tokenizer).__name__ != "SimpleTokenizer":
        return f"its tokenizer is {type(tokenizer).__name__}, not open_clip's BPE tokenizer"
    clean_fn = getattr(tokenizer, "clean_fn", None)
    if getattr(clean_fn, "__name__", "") != "_clean_lower" or tokenizer.reduction_fn is not None:
        return "its tokenizer cleans or reduces text in a way this export does not reproduce"
    if not hasattr(model, "encode_text"):
        return "the model has no encode_text"
    return None


def _build(work: Path, model: Any, tokenizer: Any) -> str | None:
    """Write text.onnx, tokenizer.json and meta.json into `work`, or return why not."""
    import torch

    _tokenizer_file(tokenizer).save(str(work / "tokenizer.json"))
    meta = {
        "context_length": int(tokenizer.context_length),
        "sot": int(tokenizer.sot_token_id),
        "eot": int(tokenizer.eot_token_id),
    }
    cpu_model = towers.cpu_model(model)
    probe_tokens = tokenizer(list(PROBES))
    towers.export(_text_module(cpu_model), probe_tokens[:2], work / "text.onnx", "tokens")
    (work / "meta.json").write_text(json.dumps(meta))
    tower = TextTower(work)
    if not np.array_equal(tower.tokens(PROBES), probe_tokens.numpy()):
        return "its tokens differ from open_clip's on the probe texts"
    with torch.inference_mode():
        reference = torch.nn.functional.normalize(cpu_model.encode_text(probe_tokens), dim=-1)
    agreement = float(np.mean(np.sum(reference.numpy() * tower.encode(PROBES), axis=1)))
    if agreement < MIN_COSINE:
        return f"the export agrees with torch at mean cosine {agreement:.6f} < {MIN_COSINE}"
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
