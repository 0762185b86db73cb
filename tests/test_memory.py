"""core.memory: the resident set and its peak follow memory the process touches; reset works.

The memory is mapped here directly (``mmap``), not taken from ``numpy``, so the figures cannot
come from heap memory the allocator already held resident after earlier tests.
"""

from __future__ import annotations

import mmap
import sys

import pytest

from geo_mz.core.memory import peak_rss_mib, reset_peak_rss, rss_mib

MIB = 2**20


def touched(mib: int) -> mmap.mmap:
    """``mib`` MiB of fresh anonymous memory, every page written (hence resident)."""
    m = mmap.mmap(-1, mib * MIB)
    chunk = b"\x01" * MIB
    for _ in range(mib):
        m.write(chunk)
    return m


def test_rss_and_peak_follow_touched_memory():
    before = rss_mib()
    m = touched(40)
    now = rss_mib()
    assert now >= before + 35
    assert peak_rss_mib() >= now - 1  # the peak is read after the current size
    m.close()
    assert rss_mib() <= now - 35


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="resettable on Linux only")
def test_reset_starts_a_new_peak():
    touched(60).close()  # unmapped: the resident set shrinks, the peak stays
    held = peak_rss_mib()
    assert reset_peak_rss()
    start = peak_rss_mib()
    assert start <= held - 50
    m = touched(30)
    assert start + 25 <= peak_rss_mib() < held
    m.close()
