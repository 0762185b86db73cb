"""PostGIS with two server processes: every process's maps get the ``analysis`` events.

The relief re-analysis after a closure runs in the processes where the analysis is in use and
is relayed to the others (``PostgisStore.share_live`` / ``listen_live``). Here the analysis is
used on A only, the closure is drawn through B and the map listens on B: without the relay B's
map never hears of the new figures. The relayed summary is checked against B computing the
analysis itself from the database.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

pytest.importorskip("psycopg")

from tests.test_webmap_analysis import bridge_polygon
from webmap.testing import SECRET, basic_auth
from webmap.testing_postgis import EventStream, serve_processes


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=120) as r:
        return json.loads(r.read())


@pytest.mark.slow  # two servers and a relief re-analysis: ~60 s on a busy 2-core box
def test_an_analysis_computed_on_one_process_reaches_the_maps_of_the_other(
    pg_sample_db, base, tmp_path
):
    users = base / "pengjiang.users.sqlite"
    with serve_processes(pg_sample_db, users, tmp_path, secret_key=SECRET) as (a, b):
        before = _get(f"{a}/analysis/relief")  # in use on A only
        assert before["closures"] == 0 and before["cut_off"] == 0
        on_b, on_a = EventStream(f"{b}/events"), EventStream(f"{a}/events")
        feature = {
            "type": "Feature",
            "geometry": bridge_polygon(base / "pengjiang.gpkg"),
            "properties": {"reason": "桥梁封闭"},
        }
        req = urllib.request.Request(
            f"{b}/collections/road_closures/items",
            data=json.dumps(feature).encode(),
            headers={"Content-Type": "application/json", **basic_auth("commander1")},
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
