"""Column-wise display formatting and escaping give the value-by-value strings exactly."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from geo_mz.core.catalog import load_catalog
from geo_mz.core.display import format_value, format_values
from geo_mz.core.results import result_catalog
from geo_mz.outputs._cartography import html_text, html_texts


def _fields():
    """A field spec of each kind (labels, shares, each unit, none; layers and results), and None."""
    seen = {}
    for spec in [*load_catalog().values(), *result_catalog().values()]:
        for f in spec.fields:
            key = (bool(f.values), f.unit)
            seen.setdefault(key, f)
    return [None, *seen.values()]


def _columns():
    rng = np.random.default_rng(7)
    floats = rng.normal(0, 1000, 200)
    floats[::7] = np.round(floats[::7])  # whole numbers written without decimals
    floats[3], floats[5], floats[9] = np.nan, np.inf, -0.0
    return [
        pd.Series(floats),
        pd.Series(rng.integers(-5, 10**9, 50)),
        pd.Series([True, False, True]),
        pd.Series([True, None, False], dtype="boolean"),
        pd.Series([1, None, 3], dtype="Int64"),
        pd.Series(["a", None, "<b>{{ x }}</b>", "", "天河区"], dtype="str"),
        pd.Series(["a", None, np.nan, 3, 2.5, True, np.int64(4), np.float32(1.5), pd.NA]),
        pd.Series(pd.to_datetime(["2024-01-02", None])),
        pd.Series([dt.date(2024, 5, 1), [1, 2], {"k": 1}], dtype=object),
        pd.Series([], dtype=float),
    ]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_format_values_equals_format_value(lang):
    fields = _fields()
    assert any(f is not None and f.values for f in fields)  # code labels are exercised
    assert any(f is not None and f.unit == "share" for f in fields)
    assert any(f is not None and f.unit not in (None, "share") for f in fields)
    for col in _columns():
        for f in fields:
            want = [format_value(v, f, lang) for v in col.tolist()]
            assert format_values(col, f, lang) == want, (col.dtype, f and f.name)
            assert format_values(col.tolist(), f, lang) == want  # a plain list too


def test_labels_of_codes_and_their_unknowns():
    f = next(f for spec in load_catalog().values() for f in spec.fields if f.values)
    codes = [v.code for v in f.values]
    col = pd.Series([*codes, "not-a-code", None, *codes], dtype=object)
    got = format_values(col, f, "zh")
    assert got == [format_value(v, f, "zh") for v in col.tolist()]
    assert got[: len(codes)] == [v.zh for v in f.values]
    assert got[len(codes)] == "not-a-code" and got[len(codes) + 1] == ""


def test_html_texts_equal_html_text():
    values = ["a & b", "<i>x</i>", "{{ 7*7 }}", "{% if %}", "'q'", '"d"', "", "普通", "a\x00b"]
    assert html_texts(values) == [html_text(v) for v in values]  # a NUL: value by value
    clean = values[:-1]
    assert html_texts(clean) == [html_text(v) for v in clean]
    assert html_texts([]) == []
    assert html_texts([""]) == [""]
