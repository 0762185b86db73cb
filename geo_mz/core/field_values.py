"""Turn the cells of a source file into the values of a spec's field types.

Text, numbers, booleans, dates and date-times as files give them (CSV text, spreadsheet numbers,
GeoPackage types) become ``str``, exact ``int``, finite ``float``, ``bool``, ``datetime.date`` or
naive UTC ``pandas.Timestamp``; a value that cannot be converted raises ``ValueError`` with the
reason, which the validator reports with the file, row and field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

#: Text read as yes / no in boolean fields (compared case-insensitively).
TRUE_WORDS = {"true", "t", "yes", "y", "1", "是", "有", "对"}
FALSE_WORDS = {"false", "f", "no", "n", "0", "否", "无", "不"}


def is_null(v: Any) -> bool:
    """Whether a cell is empty: None, NaN/NA, or blank text."""
    if v is None:
        return True
    if isinstance(v, str):
        return v.strip() == ""
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def as_text(v: Any) -> str:
    """Return a cell as text: whole floats without ``.0`` (spreadsheets give ids as 3.0)."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def coerce_value(v: Any, ftype: str) -> Any:
    """Convert one non-null value to the field type; raise ValueError when it cannot be."""
    if ftype == "string":
        return as_text(v)
    if ftype in ("integer", "float"):
        if isinstance(v, bool | np.bool_):
            raise ValueError("a boolean is not a number")
        if ftype == "integer":
            # Exact for whole numbers given as int or text (no float round trip above 2**53).
            try:
                n = (
                    int(v.strip())
                    if isinstance(v, str)
                    else int(v)
                    if isinstance(v, int | np.integer)
                    else None
                )
            except ValueError:
                n = None
            if n is None:
                x = float(str(v).strip()) if isinstance(v, str) else float(v)
                if not (np.isfinite(x) and x.is_integer()):
                    raise ValueError("not a whole number")
                n = int(x)
            if abs(n) >= 2**63:
                raise ValueError("outside the 64-bit integer range")
            return n
        x = float(str(v).strip()) if isinstance(v, str) else float(v)
        if not np.isfinite(x):
            raise ValueError("not a finite number")
        return x
    if ftype == "boolean":
        if isinstance(v, bool | np.bool_):
            return bool(v)
        s = as_text(v).casefold()
        if s in TRUE_WORDS:
            return True
        if s in FALSE_WORDS:
            return False
        raise ValueError("not a yes/no value")
    if ftype == "date":
        if isinstance(v, dt.datetime | pd.Timestamp):
            return v.date()
        if isinstance(v, dt.date):
            return v
        return dt.date.fromisoformat(as_text(v)[:10])
    if ftype == "datetime":
        if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            return pd.Timestamp(v)
        ts = (
            pd.Timestamp(v)
            if not isinstance(v, str)
            else pd.Timestamp(dt.datetime.fromisoformat(v.strip()))
        )
        if ts is pd.NaT:
            raise ValueError("not a date-time")
        return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts
    raise ValueError(f"unknown type {ftype}")


#: pandas dtypes of the numeric and boolean field types (nullable).
DTYPES = {"integer": "Int64", "float": "float64", "boolean": "boolean"}


def typed_column(values: list[Any], ftype: str) -> pd.Series:
    """Return converted values (None for empty) as a column of the field type's dtype."""
    if ftype in DTYPES:
        return pd.Series(pd.array(values, dtype=DTYPES[ftype]))
    if ftype == "datetime":
        return pd.Series(pd.to_datetime(pd.Series(values, dtype=object)), dtype="datetime64[ms]")
    if ftype == "string":
        return pd.Series(values, dtype="str")
    return pd.Series(values, dtype=object)
