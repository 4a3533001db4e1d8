"""Which precisions an index's vectors were made in, and the check that lets int8 in.

int8 is trusted on an index only after it agreed with fp32 on a sample of the index's own images
(trained CLIP weights have activation outliers that random ones lack, so no general figure
holds): the first int8 batch is embedded both ways, and a mean cosine below
config.INT8_MIN_AGREEMENT refuses the run with the figure, before anything is stored.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from idx import config
from idx.errors import PrecisionError

if TYPE_CHECKING:
    from idx.indexer.catalog import Catalog
    from idx.indexer.model.encoder import Encoder

META_KEY = "precision"


def recorded(catalog: Catalog) -> dict[str, Any]:
    """{"used": [...], "int8_agreement": float, "int8_sample": int, ...} as stored ({} if none)."""
    text = catalog.get_meta(META_KEY)
    return json.loads(text) if text else {}


def trusted(catalog: Catalog, encoder: Encoder) -> bool:
    """Whether this encoder's precision may write into the index without a check."""
    return trusted_model(catalog, encoder.precision, encoder.identity.key())


def trusted_model(catalog: Catalog, precision: str, model_key: str) -> bool:
    """`trusted` before any model is loaded (an engine whose workers load it elsewhere)."""
    if precision == "fp32":
        return True
    state = recorded(catalog)
    return state.get("int8_model") == model_key and state.get("int8_passed", False)


def check(catalog: Catalog, encoder: Encoder, batch: Any) -> float:
    """Embed `batch` (a sample of the index's own images) both ways; record and return the
    agreement, or raise PrecisionError naming it when it is below the threshold."""
    sample = batch[: config.INT8_CHECK_SAMPLE]
    return judge(catalog, encoder.identity.key(), encoder.agreement(sample), len(sample))


def judge(catalog: Catalog, model_key: str, agreement: float, sample: int) -> float:
    """Record an agreement measured wherever the model ran (Encoder.agreement on `sample` of the
    index's images), or raise PrecisionError naming it when it is below the threshold."""
    if agreement < config.INT8_MIN_AGREEMENT:
        raise PrecisionError(
            f"--precision int8 disagrees with fp32 on this index's images: mean cosine "
            f"{agreement:.4f} on {sample} images, below {config.INT8_MIN_AGREEMENT}; "
            "this model's weights do not quantise well, so add with --precision fp32 (nothing "
            "was stored)"
        )
    catalog.set_meta(
        META_KEY,
        json.dumps(
            recorded(catalog)
            | {
                "int8_model": model_key,
                "int8_passed": True,
                "int8_agreement": round(agreement, 5),
                "int8_sample": sample,
                "int8_checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        ),
    )
    return agreement


def note_use(catalog: Catalog, encoder: Encoder) -> None:
    """Record that vectors of this precision are in the index (call in a write transaction)."""
    note_precision(catalog, encoder.precision)


def note_precision(catalog: Catalog, precision: str) -> None:
    """`note_use` by the precision's name (the model ran in another process)."""
    state = recorded(catalog)
    used = state.get("used", [])
    if precision not in used:
        catalog.set_meta(META_KEY, json.dumps(state | {"used": [*used, precision]}))


def describe(catalog: Catalog) -> dict[str, Any] | None:
    """What `idx status` shows: the precisions used and int8's measured agreement."""
    state = recorded(catalog)
    if not state:
        return None
    out: dict[str, Any] = {"used": state.get("used", [])}
    if "int8_agreement" in state:
        out |= {k: state[k] for k in ("int8_agreement", "int8_sample", "int8_checked_at")}
    return out
