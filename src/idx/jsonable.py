"""Values as JSON can carry them: what the CLI prints with --json and what `idx serve` answers."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any


def to_jsonable(value: Any) -> Any:
    """`value` with datetimes and durations as ISO 8601 text, Decimals as floats, bytes as hex,
    numpy arrays and tuples as lists, NaN or infinite floats as None, and any other value that
    JSON has no type for (paths, UUIDs, ...) as its text."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return to_jsonable(value.tolist())
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def iso_duration(value: timedelta) -> str:
    """A duration as ISO 8601 text: timedelta(days=3, hours=1) -> 'P3DT1H'; negative ones
    with a leading '-'."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    seconds_text = (
        f"{seconds + value.microseconds / 1e6:g}S" if seconds or value.microseconds else ""
    )
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + seconds_text
    days = f"{value.days}D" if value.days else ""
    if not days and not clock:
        return "PT0S"
    return f"{sign}P{days}" + (f"T{clock}" if clock else "")
