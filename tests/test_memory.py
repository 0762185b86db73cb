"""core.memory: the peak resident set size rises with a large array and can be reset."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from geo_mz.core.memory import peak_rss_mib, reset_peak_rss, rss_mib


def test_peak_rises_with_a_touched_array():
    before = rss_mib()
    big = np.ones(40 * 2**20 // 8)  # 40 MiB, every page touched
    now = rss_mib()
    assert now >= before + 35
    assert peak_rss_mib() >= now - 1  # the peak is read after the current size
    del big


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="resettable on Linux only")
def test_reset_starts_a_new_peak():
    big = np.ones(60 * 2**20 // 8)
    del big  # freed (a large array is unmapped): the resident set shrinks, the peak stays
    held = peak_rss_mib()
    assert reset_peak_rss()
    start = peak_rss_mib()
    assert start <= held - 50
    small = np.ones(30 * 2**20 // 8)
    assert start + 25 <= peak_rss_mib() < held
    del small
