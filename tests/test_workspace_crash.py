"""Workspace writes killed mid-way (issue 18): the file is old or new, never half; no leftovers.

Real processes are killed with SIGKILL: ``geo-mz import`` of 60,000 shelters, and ``geo-mz
serve`` while it writes a web edit (a PATCH of one shelter, written as one row in place in the
60,000-row workspace, in one SQLite transaction). Some kills come at random moments, most when
the import's temporary copy or the edit's rollback journal exists (the window that matters).
After each kill the workspace passes SQLite's ``integrity_check``, opens, and holds either the
old or the new complete layer (row counts and contents checked against the source file read
separately); the next open removes the killed writer's copy, its journal and its lock, or rolls
back the edit's hot journal. A live writer's copy (its process stopped with SIGSTOP
mid-write) survives an open from another process, and that writer then completes. The random
delays come from a seed printed with every failure (set ``GEO_MZ_CRASH_SEED`` to replay one).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

import geo_mz.core.temp_copies as temp_copies
from geo_mz.core.temp_copies import clean_stale_temps, owned_temp, owner_record, temp_files
from geo_mz.core.workspace import Workspace
from webmap.testing import CLI_CODE, start_serve, wait_ready
from webmap.testing_postgis import free_port

pytestmark = pytest.mark.slow

N = 60_000
OLD_N = 100
BOUNDS = (112.9, 22.45, 113.25, 22.85)
SEED = int(os.environ.get("GEO_MZ_CRASH_SEED", time.time_ns() % 1_000_000))
PASSWORD = "correct-horse-9"
SECRET = "crash-test-secret-0123456789abcdef"


def shelters(n: int, seed: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(112.95, 113.2, n), rng.uniform(22.5, 22.8, n)
    return gpd.GeoDataFrame(
        {
            "shelter_id": [f"S{seed}-{i}" for i in range(n)],
            "name": [f"避难场所{i}" for i in range(n)],
            "shelter_class": ["II"] * n,
            "effective_area_m2": rng.uniform(100, 5000, n).round(1),
            "capacity_persons": rng.integers(10, 1000, n),
        },
        geometry=shapely.points(x, y),
        crs="EPSG:4490",
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The 60,000-shelter file, and a workspace holding 100 other shelters (the old state)."""
    d = tmp_path_factory.mktemp("crash")
    big, old = shelters(N, 1), shelters(OLD_N, 2)
    big.to_file(d / "big.gpkg", layer="shelters")
    old.to_file(d / "old.gpkg", layer="shelters")
    ws = Workspace.create(d / "base" / "W.gpkg", name="测试区", adcode="440703", bounds=BOUNDS)
    ws.import_file(d / "old.gpkg", "shelters")
    return {"dir": d, "base": ws.path, "big": big, "old": old}


def fresh(data: dict, name: str) -> Path:
    """A copy of the old-state workspace alone in a new folder."""
    folder = data["dir"] / name
    folder.mkdir()
    return Path(shutil.copy2(data["base"], folder / "W.gpkg"))


def state(ws_path: Path, data: dict) -> str:
    """'old' or 'new' after checking the file is whole; fails on anything in between."""
    with sqlite3.connect(f"file:{ws_path}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # The features table itself, not the layer record: the two must agree.
        stored = conn.execute("SELECT COUNT(*) FROM shelters").fetchone()[0]
    rec = Workspace(ws_path).layer_records().set_index("layer").loc["shelters"]
    assert int(rec["rows"]) == stored, f"record says {rec['rows']} rows, table has {stored}"
    raw = pyogrio.read_dataframe(ws_path, layer="shelters")
    for name, src in (("old", data["old"]), ("new", data["big"])):
        if stored == len(src):
            assert raw["shelter_id"].tolist() == src["shelter_id"].tolist()
            assert int(raw["capacity_persons"].sum()) == int(src["capacity_persons"].sum())
            return name
    raise AssertionError(f"{stored} shelters: neither the old {OLD_N} nor the new {N}")


def leftovers(ws_path: Path) -> list[str]:
    return [p.name for p in temp_files(ws_path)]


def wait_for_copy(ws_path: Path, proc: subprocess.Popen, timeout_s: float = 30.0) -> bool:
    """Wait until the writer's temporary copy exists (True) or the process ended (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.endswith(".tmp.gpkg") for p in temp_files(ws_path)):
            return True
        time.sleep(0.005)
    return False


def wait_for_replace(ws_path: Path, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Wait until the writer has replaced the workspace with its copy (a new inode)."""
    inode = os.stat(ws_path).st_ino
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if os.stat(ws_path).st_ino != inode:
            return
        time.sleep(0.002)


def kill_when(when: str, delay: float, ws_path: Path, proc: subprocess.Popen) -> bool:
    """Kill the writer: ``delay`` s from now (any), after its copy appeared (in_write) or
    right after the replace (after_replace); return whether its copy existed at the kill."""
    if when == "in_write":
        assert wait_for_copy(ws_path, proc), f"seed {SEED}: no copy appeared"
    elif when == "after_replace":
        wait_for_replace(ws_path, proc)
    time.sleep(delay)
    copy_there = any(n.endswith(".tmp.gpkg") for n in leftovers(ws_path))
    kill(proc)
    return copy_there


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def start_import(ws_path: Path, src: Path) -> subprocess.Popen:
    """Run ``geo-mz import`` in its own process; its output goes to ``import.log`` beside."""
    cmd = [sys.executable, "-c", CLI_CODE, "import", str(src), "--layer", "shelters"]
    cmd += ["--workspace", str(ws_path)]
    with (ws_path.parent / "import.log").open("wb") as fh:  # the child keeps its own copy
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)


def output(ws_path: Path) -> str:
    return (ws_path.parent / "import.log").read_text(errors="replace")


# -- an import killed --------------------------------------------------------------------------
def test_import_killed_leaves_old_or_new_and_the_next_open_cleans_up(data, caplog):
    rng = random.Random(SEED)
    # Two kills at any moment (the process may not have reached the write), two inside the
    # write (it lasts about a second), one just after the replace (the new file complete).
    plan = [("any", rng.uniform(0.3, 2.6)) for _ in range(2)]
    plan += [("in_write", rng.uniform(0.0, 0.3)) for _ in range(2)]
    plan += [("after_replace", 0.0)]
    seen, mid_write = [], 0
    for i, (when, delay) in enumerate(plan):
        ws_path = fresh(data, f"import{i}")
        proc = start_import(ws_path, data["dir"] / "big.gpkg")
        copy_there = kill_when(when, delay, ws_path, proc)
        left = leftovers(ws_path)
        killed = proc.returncode == -signal.SIGKILL
        mid_write += copy_there and killed
        if copy_there and killed:
            assert any(n.endswith(".tmp.lock") for n in left), left
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="geo_mz.core.temp_copies"):
            got = state(ws_path, data)
        assert leftovers(ws_path) == [], f"seed {SEED}, run {i}: {leftovers(ws_path)}"
        if left:
            assert "已删除" in caplog.text and "removed temporary files" in caplog.text
            assert all(n in caplog.text for n in left)
        if when == "after_replace":
            assert got == "new", output(ws_path)
        seen.append((when, round(delay, 2), proc.returncode, got, len(left)))
    print(f"seed {SEED}: (when, delay, returncode, state, leftovers) {seen}")  # with -s
    # An uninterrupted import reaches the new state: see the live writer's test below.
    assert mid_write >= 2, f"seed {SEED}: too few kills inside the write: {seen}"


def test_a_live_writers_copy_survives_an_open_from_another_process(data):
    ws_path = fresh(data, "live")
    proc = start_import(ws_path, data["dir"] / "big.gpkg")
    try:
        assert wait_for_copy(ws_path, proc)
        proc.send_signal(signal.SIGSTOP)  # mid-write, alive, holding its lock
        before = leftovers(ws_path)
        assert any(n.endswith(".tmp.gpkg") for n in before)
        ws = Workspace(ws_path)  # this test's process: not the writer
        assert ws.removed_temps == []
        assert set(before) <= set(leftovers(ws_path))
        assert clean_stale_temps(ws_path, unowned_age_s=0.0) == []
        assert set(before) <= set(leftovers(ws_path))
        assert state(ws_path, data) == "old"  # readers see the old file meanwhile
    finally:
        proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=60) == 0, output(ws_path)
    assert state(ws_path, data) == "new" and leftovers(ws_path) == []


# -- a web edit killed -------------------------------------------------------------------------
def patch(url: str, body: dict, out: list) -> None:
    """Send a PATCH as commander1; record the status or the error (the server may die)."""
    token = base64.b64encode(f"commander1:{PASSWORD}".encode()).decode()
    auth = {"Authorization": f"Basic {token}"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=60) as r:
            etag = r.headers["ETag"]  # PATCH needs If-Match (428 without)
        req = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="PATCH",
            headers=auth | {"Content-Type": "application/json", "If-Match": etag},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            out.append(r.status)
    except urllib.error.HTTPError as exc:
        out.append(exc.code)
    except (urllib.error.URLError, OSError) as exc:
        out.append(type(exc).__name__)


@pytest.fixture(scope="module")
def served(data) -> Path:
    """A workspace holding the 60,000 shelters and a commander, to be copied per run."""
    from webmap.core.users import UserStore
    from webmap.settings import users_db_for

    pytest.importorskip("flask")
    pytest.importorskip("waitress")
    folder = data["dir"] / "served_base"
    folder.mkdir()
    ws = Workspace(shutil.copy2(data["base"], folder / "W.gpkg"))
    ws.import_file(data["dir"] / "big.gpkg", "shelters")
    UserStore(users_db_for(ws.path)).add("commander1", "commander", PASSWORD)
    return folder


def wait_for_journal(
    ws_path: Path, proc: subprocess.Popen, client: threading.Thread, timeout_s: float = 30.0
) -> bool:
    """Spin until the edit's rollback journal exists (True), or the edit was answered or the
    server ended first (False: on a busy machine this process may sleep through the journal's
    few milliseconds)."""
    journal = Path(f"{ws_path}-journal")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if journal.exists():
            return True
        if proc.poll() is not None or not client.is_alive():
            return False
    return False


def wait_for_commit(ws_path: Path, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Wait until the edit has committed (the file's time moved on, no journal left)."""
    mtime = os.stat(ws_path).st_mtime_ns
    journal = Path(f"{ws_path}-journal")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if os.stat(ws_path).st_mtime_ns != mtime and not journal.exists():
            return
        time.sleep(0.002)


def test_web_edit_killed_leaves_old_or_new_and_the_next_open_cleans_up(data, served):
    from webmap.core.gpkg_rows import recover

    rng = random.Random(SEED + 1)
    target = str(data["big"]["shelter_id"].iloc[12_345])
    before = pyogrio.read_dataframe(served / "W.gpkg", layer="shelters")
    row = int(np.flatnonzero(before["shelter_id"].to_numpy() == target)[0])
    assert before["occupancy_persons"].isna().all()
    # The edit writes its row in place (~10-30 ms with its syncs: the journal's, the file's,
    # the directory's): kill at a random moment after its journal appears - early (before the
    # file is touched), mid-way (the file's pages may be written: the journal is hot) and late
    # (maybe committed) - then once after the commit.
    # A run whose journal this process did not see (it slept through it) is tried again.
    spans = [(0.0, 0.002), (0.004, 0.012), (0.010, 0.025)]
    plan = [("in_write", k, rng.uniform(*span)) for k, span in enumerate(spans) for _ in range(2)]
    plan.append(("after_commit", -1, 0.0))
    results, hot, seen_journal = [], 0, set()
    for i, (when, span, delay) in enumerate(plan):
        if span in seen_journal:
            continue
        folder = data["dir"] / f"web{i}"
        shutil.copytree(served, folder)
        ws_path = folder / "W.gpkg"
        log = folder / "server.log"
        port = free_port()
        root = f"http://127.0.0.1:{port}"
        cmd = ["--workspace", str(ws_path), "--port", str(port), "--lang", "en"]
        proc = start_serve(cmd, log, secret_key=SECRET)
        try:
            wait_ready(root, proc, log)
            out: list = []
            url = f"{root}/collections/shelters/items/{target}"
            t = threading.Thread(target=patch, args=(url, {"occupancy_persons": 7}, out))
            t.start()
            if when == "in_write":
                if wait_for_journal(ws_path, proc, t):
                    seen_journal.add(span)
                else:
                    when = "in_write (journal missed)"
                end = time.perf_counter() + delay
                while time.perf_counter() < end:
                    pass
            else:
                wait_for_commit(ws_path, proc)
            kill(proc)
        finally:
            kill(proc)
        t.join(timeout=30)
        journal_left = Path(f"{ws_path}-journal").exists()
        hot += journal_left
        assert recover(ws_path) == journal_left  # the next open (the server does it first)
        got = web_state(ws_path, before, row)
        assert leftovers(ws_path) == [], f"seed {SEED}, run {i}: {leftovers(ws_path)}"
        assert not Path(f"{ws_path}-journal").exists()
        if when == "after_commit":
            assert got == "new", log.read_text(errors="replace")
        results.append((when, round(delay, 4), out, got, journal_left))
    print(f"seed {SEED}: (when, delay, response, state, journal left) {results}")  # with -s
    assert hot >= 1, f"seed {SEED}: no kill inside the write: {results}"


def web_state(ws_path: Path, before: gpd.GeoDataFrame, row: int) -> str:
    """'old' or 'new' (only the edited shelter's occupancy set to 7), after an integrity check."""
    with sqlite3.connect(f"file:{ws_path}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = conn.execute("SELECT COUNT(*) FROM shelters").fetchone()[0]
    Workspace(ws_path)  # the next open
    rec = Workspace(ws_path).layer_records().set_index("layer").loc["shelters"]
    assert int(rec["rows"]) == stored == N
    now = pyogrio.read_dataframe(ws_path, layer="shelters")
    assert len(now) == len(before) == N
    occ = now["occupancy_persons"]
    others = np.ones(len(now), dtype=bool)
    others[row] = False
    assert occ[others].isna().all()
    cols = [c for c in before.columns if c not in ("occupancy_persons", "geometry")]
    assert now[cols].equals(before[cols])
    assert shapely.equals(now.geometry.to_numpy(), before.geometry.to_numpy()).all()
    if np.isnan(occ.iloc[row]):
        assert "edited in the web map" not in str(rec["method"])
        return "old"
    assert occ.iloc[row] == 7
    assert "edited in the web map" in str(rec["method"])  # the record moved with the row
    return "new"


# -- the cleaning rules, one by one ------------------------------------------------------------
def test_owner_lock_held_while_writing_and_released_after(tmp_path):
    target = tmp_path / "W.gpkg"
    target.write_bytes(b"x")
    with owned_temp(target) as tmp:
        tmp.write_bytes(b"copy")
        Path(f"{tmp}-journal").write_bytes(b"j")
        names = leftovers(target)
        assert {tmp.name, f"{tmp.name}-journal"} < set(names)
        lock = next(p for p in temp_files(target) if p.name.endswith(".tmp.lock"))
        owner = json.loads(lock.read_text())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
        assert clean_stale_temps(target, unowned_age_s=0.0) == []  # held: kept
        assert set(names) == set(leftovers(target))
    assert leftovers(target) == []


def test_unowned_copies_wait_for_their_age_and_dead_owners_go(tmp_path, caplog):
    target = tmp_path / "W.gpkg"
    target.write_bytes(b"x")
    legacy = tmp_path / ".W.gpkg.abc123_x.tmp.gpkg"  # made before locks existed
    legacy.write_bytes(b"old copy")
    other = tmp_path / ".W2.gpkg.abc123.tmp.gpkg"  # another workspace's
    other.write_bytes(b"not ours")
    assert clean_stale_temps(target) == [] and legacy.exists()
    with caplog.at_level(logging.WARNING, logger="geo_mz.core.temp_copies"):
        removed = clean_stale_temps(target, unowned_age_s=0.0)
    assert [r.files for r in removed] == [[legacy]] and not legacy.exists() and other.exists()
    assert "no owner lock" in caplog.text
    # A lock whose owner died before it made its copy is removed too.
    code = (
        "from geo_mz.core.temp_copies import owned_temp; import os, sys\n"
        f"with owned_temp({str(target)!r}) as t:\n"
        "    open(t, 'wb').write(b'half'); os._exit(0)  # dies holding the lock\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert len(leftovers(target)) == 2
    removed = clean_stale_temps(target)
    assert len(removed) == 1 and len(removed[0].files) == 2 and leftovers(target) == []


def test_without_flock_the_owner_record_decides(tmp_path, monkeypatch):
    target = tmp_path / "W.gpkg"
    target.write_bytes(b"x")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    records = {
        "dead": {**owner_record(), "pid": dead.pid, "start_ticks": None},
        "alive": owner_record(),
        "reused": {**owner_record(), "start_ticks": -1},  # our pid, another process's start
        "elsewhere": {**owner_record(), "pid": dead.pid, "host": "another-host"},
    }
    for token, rec in records.items():
        (tmp_path / f".W.gpkg.{token}.tmp.gpkg").write_bytes(b"copy")
        (tmp_path / f".W.gpkg.{token}.tmp.lock").write_text(json.dumps(rec))
    monkeypatch.setattr(temp_copies, "fcntl", None)  # as on a system without flock
    removed = clean_stale_temps(target)
    gone = sorted(r.files[0].name.split(".")[3] for r in removed)
    assert gone == ["dead", "reused"]
    assert sorted({n.split(".")[3] for n in leftovers(target)}) == ["alive", "elsewhere"]
