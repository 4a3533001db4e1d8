"""Values as JSON can carry them: what the CLI prints with --json and what `idx serve` answers."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePath
from typing import Any


def to_jsonable(value: Any) -> Any:
    """`value` with datetimes as ISO text, Decimals as floats, bytes as hex, paths as text,
    numpy arrays and tuples as lists, and NaN or infinite floats as None."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return to_jsonable(value.tolist())
    return value
