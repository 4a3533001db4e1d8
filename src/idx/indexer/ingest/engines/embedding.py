"""The per-batch embedding that every engine runs where its model is: `embed_rows`, and
`Embedding`, how a batch was embedded (its own module: the engines import it, and the package's
`create` imports the engines)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from idx import config
from idx.indexer.files.reader import Prepared


@dataclass
class Embedding:
    """How one batch was embedded: where, in which precision, and, when asked, the model's
    agreement with fp32 on the batch's first images (the int8 check, indexer.model.precision)."""

    device: str
    precision: str
    agreement: float | None = None
    sample: int = 0
    node: str | None = None  # the Ray node that ran the model (None: this process)


def embed_rows(encoder: Any, rows: list[Prepared], check: bool = False) -> Embedding:
    """Embed the rows' tensors in one model call (content repeated within the batch once), set
    each row's `vector`, drop its tensor; with `check`, measure a lower precision against fp32."""
    slot: dict[str, int] = {}
    tensors: list[Any] = []  # Prepared.tensor: whatever the encoder's preprocessing made
    for row in rows:
        if row.sha256 not in slot:
            slot[row.sha256] = len(tensors)
            tensors.append(row.tensor)
    pixels = encoder.stack(tensors)
    done = Embedding(encoder.device.describe(), encoder.precision)
    if check and encoder.precision != "fp32":
        sample = pixels[: config.INT8_CHECK_SAMPLE]
        done.agreement, done.sample = encoder.agreement(sample), len(sample)
    vectors = encoder.encode_images(pixels)
    for row in rows:
        row.vector, row.tensor = vectors[slot[row.sha256]], None
        row.embedding = done
    return done
