"""Texts to vectors for one model: the torch-free text tower where it applies, else the model.

One rule for every text a command encodes (search queries, zero-shot prompts, SQL's
`text_embedding`), so that a text gets the same vector whichever way the process started: the
cached ONNX text tower (indexer.model.text_tower) when this machine has it for the model, the text is
`eligible`, and the model runs (or would run) on the CPU; otherwise the loaded open_clip model,
which then prepares the tower for later processes (once per model and machine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from idx.indexer.model import text_tower
from idx.indexer.model.identity import ModelIdentity


class TextEncoder:
    """`identity` and `encoder` are called only when needed (the first text, the first text
    the tower cannot take); `loaded` returns the model if this process already has it."""

    def __init__(
        self,
        identity: Callable[[], ModelIdentity],
        encoder: Callable[[], Any],
        *,
        device: str = "auto",
        loaded: Callable[[], Any] = lambda: None,
    ):
        self._identity = identity
        self._encoder = encoder
        self._loaded = loaded
        self._device = device
        self._tower: text_tower.TextTower | None | Literal[False] = None  # False: looked, none
        self._prepared = False  # whether this process tried to prepare the tower
        #: What encoded the last texts: "text tower" or "model".
        self.used: str | None = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        tower = self._cached_tower()
        vectors = None if tower is None else tower.encode(texts)  # None: a text it cannot take
        if vectors is not None:
            self.used = "text tower"
            return vectors
        encoder = self._encoder().torch_model()
        vectors = encoder.encode_texts(texts)
        self.used = "model"
        if self._tower is False and not self._prepared:  # once: not again for every query
            self._prepared = True
            if text_tower.prepare(encoder.identity, encoder.model, encoder.tokenizer):
                self._tower = None  # look again: it may serve the next texts
        return vectors

    def warm(self) -> None:
        """Have ready what texts will need: the cached tower, else the model, which prepares
        the tower for this process and later ones (`idx serve` does this before its first
        query)."""
        if self._cached_tower() is None:
            encoder = self._encoder().torch_model()
            if text_tower.prepare(encoder.identity, encoder.model, encoder.tokenizer):
                self._tower = None  # look again: it is there now

    def _cached_tower(self) -> text_tower.TextTower | None:
        if self._tower is None:
            model = self._loaded()
            if model is not None:
                on_cpu = model.device.kind == "cpu"
            else:  # not loaded: a tower on the CPU starts far sooner than any device would
                on_cpu = self._device in ("auto", "cpu")
            self._tower = (on_cpu and text_tower.cached(self._identity())) or False
        return self._tower or None
