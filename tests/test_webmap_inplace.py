"""Web edits written in place (``webmap.core.gpkg_rows``, ``geo_mz.core.gpkg_lock``).

Real processes, a real GeoPackage and GDAL (pyogrio) reading it: two processes write one
workspace at once while each reads it with GDAL in another thread; a write killed after its
pages reached the file is rolled back by the next open; GDAL in the writer's own process can
neither read mid-write nor, by opening and closing the file, let another process in; every
in-place edit moves the file stamps the caches compare, and the layer's records follow.
"""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyogrio
import pytest

from geo_mz.core import Workspace
from geo_mz.core.gpkg_lock import OFD_LOCKS
from geo_mz.core.layer_digest import gpkg_layer_digests
from webmap.testing import fresh_settings

pytestmark = pytest.mark.skipif(
    not OFD_LOCKS, reason="in-place writes need open-file-description locks (Linux)"
)

WRITER = r"""
import sys, threading
import geopandas as gpd, pandas as pd, pyogrio, shapely
from geo_mz.core.gpkg_lock import workspace_lock
from webmap.core.gpkg_rows import write_row
from webmap.core.layers import layer_spec

path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
spec = layer_spec("incidents")
stop = threading.Event()
reads = []

def reader():  # GDAL opens and closes the file here all the time, as the web map's reads do
    while not stop.is_set():
        with workspace_lock(path).shared():
            reads.append(len(pyogrio.read_dataframe(path, layer="incidents")))

t = threading.Thread(target=reader)
t.start()
for i in range(n):
    row = gpd.GeoDataFrame(
        {"incident_id": [f"{tag}-{i}"], "kind": ["flood"], "description": [f"{tag} {i}"],
         "reported_at": [pd.Timestamp("2026-07-01T08:00:00")], "status": ["open"]},
        geometry=[shapely.Point(113.05 + i * 1e-4, 22.58 + (tag == "B") * 0.01)],
        crs="EPSG:4490",
    )
    write_row(path, "incidents", spec, f"{tag}-{i}", row)
    if i % 3 == 2:  # and update one of its own
        row["description"] = [f"{tag} {i} updated"]
        write_row(path, "incidents", spec, f"{tag}-{i}", row)
stop.set()
t.join()
print(len(reads), reads == sorted(reads))
"""

N = 25
SHELTER = "/collections/shelters/items/SH001"


@pytest.fixture
def ws_path(base: Path, tmp_path: Path) -> Path:
    return Path(fresh_settings(base, tmp_path / "ws").workspace)


def run_py(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_two_processes_write_one_workspace_at_once(ws_path):
    digests = gpkg_layer_digests(ws_path)
    procs = [run_py(WRITER, str(ws_path), tag, str(N)) for tag in ("A", "B")]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode(errors="replace")
        reads, grew = out.decode().split()
        assert int(reads) > 0 and grew == "True"  # each GDAL read saw whole edits, in order
    with sqlite3.connect(f"file:{ws_path}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = conn.execute("SELECT COUNT(*) FROM incidents").fetchone()[0]
        rtree = conn.execute("SELECT COUNT(*) FROM rtree_incidents_geom").fetchone()[0]
        counted = conn.execute(
            "SELECT feature_count FROM gpkg_ogr_contents WHERE table_name = 'incidents'"
        ).fetchone()[0]
        extent = conn.execute(
            "SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name = 'incidents'"
        ).fetchone()
    got = pyogrio.read_dataframe(ws_path, layer="incidents")  # GDAL reads every row
    want = {f"{tag}-{i}" for tag in ("A", "B") for i in range(N)}
    assert set(got["incident_id"]) == want and len(got) == stored == rtree == counted == 2 * N
    updated = got[got["description"].str.endswith("updated")]["incident_id"]
    assert set(updated) == {f"{t}-{i}" for t in ("A", "B") for i in range(N) if i % 3 == 2}
    minx, miny, maxx, maxy = got.total_bounds
    assert extent[0] <= minx and extent[1] <= miny and extent[2] >= maxx and extent[3] >= maxy
    rec = Workspace(ws_path).layer_records().set_index("layer").loc["incidents"]
    assert int(rec["rows"]) == 2 * N and rec["method"].count("edited in the web map") == 1
    after = gpkg_layer_digests(ws_path)
    assert {k for k in digests if digests[k] != after[k]} == {"incidents"}


SPILL = r"""
import sys, time
from pathlib import Path
from geo_mz.core.gpkg_lock import workspace_lock
from webmap.core.gpkg_rows import _in_place_connection

path = Path(sys.argv[1])
with workspace_lock(path).exclusive() as inode:
    conn = _in_place_connection(path, inode)
    conn.execute("PRAGMA cache_size = 2")  # pages spill to the file before the commit
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE roads SET name = COALESCE(name, '') || ' X'")
    print("written", flush=True)
    time.sleep(60)
"""


def test_a_write_killed_after_its_pages_reached_the_file_is_rolled_back(ws_path):
    from webmap.core.gpkg_rows import recover

    before = pyogrio.read_dataframe(ws_path, layer="roads")
    proc = run_py(SPILL, str(ws_path))
    assert proc.stdout.readline().strip() == b"written", proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert Path(f"{ws_path}-journal").stat().st_size > 0  # hot: pages in the file, old in here
    with pytest.raises(pyogrio.errors.DataSourceError):  # read-only opens refuse such a file
        pyogrio.read_dataframe(ws_path, layer="roads")
    assert recover(ws_path) is True
    assert not Path(f"{ws_path}-journal").exists() and recover(ws_path) is False
    with sqlite3.connect(f"file:{ws_path}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    after = pyogrio.read_dataframe(ws_path, layer="roads")
    assert after["name"].fillna("").equals(before["name"].fillna(""))


def test_gdal_here_neither_reads_mid_write_nor_lets_another_process_in(ws_path):
    from geo_mz.core.gpkg_lock import workspace_lock

    done: list[float] = []
    released: list[float] = []

    def read() -> None:  # GDAL in another thread, not taking the in-process lock
        pyogrio.read_dataframe(ws_path, layer="shelters")
        done.append(time.monotonic())

    probe = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0.2)\n"
        "try:\n c.execute('BEGIN IMMEDIATE'); print('got it')\n"
        "except sqlite3.OperationalError as e: print(e)"
    )
    with workspace_lock(ws_path).exclusive():
        t = threading.Thread(target=read)
        t.start()
        # What GDAL does on every open and close: another descriptor of the file closed in
        # this process, which drops every classic POSIX lock the process holds on it.
        os.close(os.open(ws_path, os.O_RDONLY))
        other = subprocess.run(
            [sys.executable, "-c", probe, str(ws_path)], capture_output=True, text=True, timeout=60
        )
        assert other.stdout.strip() == "database is locked", other.stderr
        assert not done  # GDAL's read in this process waits for the write
        released.append(time.monotonic())
    t.join(timeout=30)
    assert done and done[0] >= released[0]


def test_every_in_place_edit_moves_the_stamps_caches_compare(base, tmp_path):
    from geo_mz.scale.partition import source_layer
    from webmap.app import create_app
    from webmap.testing import PASSWORD

    app = create_app(fresh_settings(base, tmp_path / "ws"))
    store = app.extensions["webmap"].store
    path = Path(app.extensions["webmap"].settings.workspace)
    ws = Workspace(path)
    first = source_layer(ws, "shelters").set_index("shelter_id")["occupancy_persons"]
    assert first.loc["SH001"] not in (10, 11, 12)  # now cached, keyed on the file's stamp
    token = base64.b64encode(f"commander1:{PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "If-Match": "*"}
    client = app.test_client()
    stamps = [os.stat(path)]
    for i in range(3):  # quicker than the kernel's clock tick: the stamp still moves
        r = client.patch(SHELTER, json={"occupancy_persons": 10 + i}, headers=headers)
        assert r.status_code == 200, r.json
        stamps.append(os.stat(path))
    assert len({s.st_ino for s in stamps}) == 1  # written in place
    mtimes = [s.st_mtime_ns for s in stamps]
    assert mtimes == sorted(mtimes) and len(set(mtimes)) == len(mtimes)
    fresh = source_layer(ws, "shelters").set_index("shelter_id")["occupancy_persons"]
    assert fresh.loc["SH001"] == 12 and fresh.drop("SH001").equals(first.drop("SH001"))
    served = store.frame("shelters").set_index("shelter_id")["occupancy_persons"]
    assert served.loc["SH001"] == 12


def test_opening_the_workspace_rolls_back_a_killed_write(ws_path):
    """A ``geo-mz`` command after a killed web edit: ``Workspace()`` rolls it back itself."""
    before = pyogrio.read_dataframe(ws_path, layer="roads")
    proc = run_py(SPILL, str(ws_path))
    assert proc.stdout.readline().strip() == b"written", proc.stderr.read()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert Path(f"{ws_path}-journal").stat().st_size > 0
    ws = Workspace(ws_path)  # no recover(): the open does it
    assert not Path(f"{ws_path}-journal").exists()
    assert ws.read("roads")["name"].fillna("").equals(before["name"].fillna(""))


def test_a_layer_write_waits_for_an_edit_in_place(ws_path):
    """A whole-layer write copies the file under SQLite's SHARED lock: never mid-edit."""
    ws = Workspace(ws_path)
    roads = ws.read("roads")
    proc = run_py(SPILL, str(ws_path))  # holds the EXCLUSIVE lock mid-edit, then is killed
    assert proc.stdout.readline().strip() == b"written", proc.stderr.read()
    done = threading.Event()

    def write() -> None:
        prov = {"synthetic": True, "source": "test", "method": "rewritten whole"}
        ws.write_layers({"roads": roads}, {"roads": prov})
        done.set()

    t = threading.Thread(target=write)
    t.start()
    time.sleep(1.0)
    assert not done.is_set()  # waiting for the edit's lock, not copying a half-written file
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    t.join(timeout=60)
    assert done.is_set()
    with sqlite3.connect(f"file:{ws_path}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(Workspace(ws_path).read("roads")) == len(roads)
