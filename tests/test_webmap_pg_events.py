"""PostGIS with two server processes: every process's maps get the ``analysis`` events.

The relief re-analysis after a closure runs in the processes where the analysis is in use and
is relayed to the others (``PostgisStore.share_live`` / ``listen_live``). Here the analysis is
used on A only, the closure is drawn through B and the map listens on B: without the relay B's
map never hears of the new figures. The relayed summary is checked against B computing the
analysis itself from the database.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("psycopg")

from tests.test_webmap_analysis import bridge_polygon
from tests.test_webmap_postgis import _serve, _wait_ready, basic
from webmap.testing import sample_base


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_base(tmp_path_factory.getbasetemp() / "webmap_base")


@pytest.fixture(scope="module")
def db(pg_url, base) -> str:
    from webmap.core.postgis import import_workspace

    import_workspace(pg_url, base / "pengjiang.gpkg", replace=True)
    return pg_url


class Events:
    """Reads a ``/events`` stream: every event, with or without ``id:``."""

    def __init__(self, url: str) -> None:
        req = urllib.request.Request(url, headers={"Accept": "text/event-stream"})
        self.resp = urllib.request.urlopen(req, timeout=60)
        assert self.resp.readline().startswith(b"retry:")

    def until(self, kind: str, deadline_s: float) -> tuple[list[str], dict | None]:
        """Read until an event ``kind`` (returns the kinds seen before it and its data)."""
        seen: list[str] = []
        fields: dict[str, str] = {}
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            line = self.resp.readline().decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if line:
                key, _, value = line.partition(": ")
                fields[key] = value
                continue
            if "event" in fields:
                if fields["event"] == kind:
                    return seen, json.loads(fields.get("data", "null"))
                seen.append(fields["event"])
            fields = {}
        return seen, None

    def close(self) -> None:
        self.resp.close()


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=120) as r:
        return json.loads(r.read())


@pytest.mark.slow  # two servers and a relief re-analysis: ~60 s on a busy 2-core box
def test_an_analysis_computed_on_one_process_reaches_the_maps_of_the_other(db, base, tmp_path):
    from webmap.testing_postgis import free_port

    users = base / "pengjiang.users.sqlite"
    procs, roots = [], []
    try:
        for name in ("a", "b"):
            port = free_port()
            log = tmp_path / f"serve_{name}.log"
            procs.append((_serve(db, users, port, log), log))
            roots.append(f"http://127.0.0.1:{port}")
        for (proc, log), root in zip(procs, roots, strict=True):
            _wait_ready(root, proc, log)
        a, b = roots
        before = _get(f"{a}/analysis/relief")  # in use on A only
        assert before["closures"] == 0 and before["cut_off"] == 0
        on_b, on_a = Events(f"{b}/events"), Events(f"{a}/events")
        feature = {
            "type": "Feature",
            "geometry": bridge_polygon(base / "pengjiang.gpkg"),
            "properties": {"reason": "桥梁封闭"},
        }
        req = urllib.request.Request(
            f"{b}/collections/road_closures/items",
            data=json.dumps(feature).encode(),
            headers={"Content-Type": "application/json", **basic("commander1")},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 201
        seen_b, relayed = on_b.until("analysis", 60)
        seen_a, local = on_a.until("analysis", 30)
        on_b.close()
        on_a.close()
        assert relayed is not None, f"B's map got no analysis event (saw {seen_b})"
        assert "change" in seen_b  # the closure itself came first
        assert local is not None, f"A's map got no analysis event (saw {seen_a})"
        assert relayed == local  # the same result, computed once on A
        assert relayed["closures"] == 1 and relayed["cut_off"] > 0
        # cross-check: B computes the analysis itself from the database
        own = _get(f"{b}/analysis/relief")
        keys = ("version", "closures", "edges_closed", "cut_off", "falls_out", "counts")
        assert {k: own[k] for k in keys} == {k: relayed[k] for k in keys}
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
