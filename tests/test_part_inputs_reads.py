"""A part's inputs read together (``read_part``): the frames of the separate reads.

On the sample GeoPackage and on a copy of it in a real PostGIS server (the session's
cluster): the county part and its towns, several layers of each kind (own rows, rows in the
own units' box, rows in the cut), layers and parts with no rows; the round trips counted from
libpq's trace; a workspace without the ``adcode`` index reads the same frames; a PostGIS read
holds Python's cyclic GC off and gives it back as it found it.
"""

from __future__ import annotations

import math

import pytest
import shapely

from geo_mz.scale.cut import make_cut
from geo_mz.scale.part_inputs import (
    own_bbox,
    read_box,
    read_once,
    read_own,
    read_part,
    units_of_part,
)
from geo_mz.scale.partition import Part
from geo_mz.scale.parts import parts_of

from .test_workspace_postgis import assert_same_layer

OWN = {"population": ["pop_total", "pop_60plus"], "place_names": None, "landuse": ["name"]}
BOXED = {"shelters": ["name", "capacity_persons"], "elder_care": None, "hazards": None}
IN_CUT = {"roads": ["road_class", "speed_kmh"], "water": None, "incidents": ["kind"]}
CRS = "EPSG:4547"


def separate(ws, part, cut, own=OWN, boxed=BOXED, in_cut=IN_CUT):
    """The separate reads ``read_part`` stands for, in one snapshot (``read_once``)."""
    with read_once(ws) as w:
        units = units_of_part(w, part)
        bbox = own_bbox(units, part)
        return {
            "units": units,
            "bbox": bbox,
            **{k: read_own(w, k, bbox, part.code, columns=c) for k, c in own.items()},
            **{k: read_box(w, k, bbox, c) for k, c in boxed.items()},
            **{k: read_box(w, k, cut.lonlat_bbox, c, cut) for k, c in in_cut.items()},
        }


def together(ws, part, cut, own=OWN, boxed=BOXED, in_cut=IN_CUT):
    got = read_part(ws, part, own=own, boxed=boxed, cut=cut, in_cut=in_cut)
    return {"units": got.units, "bbox": got.bbox, **got.own, **got.boxed, **got.cut}


def assert_same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    assert got["bbox"] == want["bbox"]
    for k in want:
        if k != "bbox":
            assert_same_layer(got[k], want[k])


def sample_parts(ws) -> list[Part]:
    units = ws.read("admin_units")
    parts = parts_of(units, "county") + parts_of(units, "town")[:3]
    # A part with no unit, people or road of its own: far from the sample's area.
    far = Part("449999", "nowhere", shapely.box(100.0, 20.0, 100.01, 20.01))
    return [*parts, far]


@pytest.fixture(scope="module")
def pws(pg_url, sample_ws):
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    return PostgisWorkspace.from_workspace(sample_ws, pg_url, schema="part_reads", replace=True)


def test_geopackage_read_part_equals_the_separate_reads(sample_ws):
    parts = sample_parts(sample_ws)
    for part in parts:
        cut = make_cut(part.geometry, CRS, 2000.0)
        want = separate(sample_ws, part, cut)
        assert_same(together(sample_ws, part, cut), want)
    # the rows are there to compare: own people, rows in the box and in the cut, and none
    county = separate(sample_ws, parts[0], make_cut(parts[0].geometry, CRS, 2000.0))
    assert min(len(county[k]) for k in ("population", "shelters", "roads", "water")) > 0
    assert len(county["hazards"]) == 0 and len(county["incidents"]) == 0
    nowhere = separate(sample_ws, parts[-1], make_cut(parts[-1].geometry, CRS, 2000.0))
    assert all(len(nowhere[k]) == 0 for k in ("units", "population", "shelters", "roads"))


def test_postgis_read_part_equals_the_separate_reads_in_one_round_trip(pws, sample_ws):
    from .test_workspace_postgis_trips import traced

    for part in sample_parts(sample_ws):
        cut = make_cut(part.geometry, CRS, 2000.0)
        want = separate(sample_ws, part, cut)  # the GeoPackage's frames
        assert_same(together(pws, part, cut), want)
        assert_same(separate(pws, part, cut), want)
    part = sample_parts(sample_ws)[1]  # a town: its neighbours' people are in its box
    cut = make_cut(part.geometry, CRS, 2000.0)
    with traced(pws._url) as t:
        read_part(pws, part, own=OWN, cut=cut, in_cut=IN_CUT)
    assert t["trips"] == 3, t["text"]  # the start, every read, the end (not waited for)
    with traced(pws._url) as t:
        read_part(pws, part, own=OWN, boxed=BOXED, cut=cut, in_cut=IN_CUT)
    assert t["trips"] == 4, t["text"]  # the boxed rows need the box in their query: one more
    with traced(pws._url) as t:
        separate(pws, part, cut)
    assert t["trips"] == 2 + 1 + len(OWN) + len(BOXED) + len(IN_CUT), t["text"]


def test_postgis_without_the_code_index_reads_the_same_frames(pg_url, sample_ws):
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    from .test_workspace_postgis_trips import traced

    ws = PostgisWorkspace.from_workspace(sample_ws, pg_url, schema="part_noindex", replace=True)
    with pooled_connection(pg_url) as conn:
        for kind in OWN:
            conn.execute(f'DROP INDEX IF EXISTS part_noindex."{kind}_adcode"')
    for part in sample_parts(sample_ws)[:2]:
        cut = make_cut(part.geometry, CRS, 2000.0)
        assert_same(together(ws, part, cut), separate(sample_ws, part, cut))
    with traced(pg_url) as t:
        read_part(ws, part, own={"population": None}, cut=cut, in_cut=IN_CUT)
    assert t["trips"] == 4, t["text"]  # the own rows wait for the units: their box is asked


def test_a_part_of_the_units_only_and_bad_requests(pws, sample_ws):
    part = sample_parts(sample_ws)[0]
    for ws in (sample_ws, pws):
        got = read_part(ws, part)
        assert_same_layer(got.units, units_of_part(sample_ws, part))
        assert got.own == {} and got.boxed == {} and got.cut == {}
        with pytest.raises(ValueError, match="in_cut needs the cut"):
            read_part(ws, part, in_cut={"roads": None})
        with pytest.raises(ValueError, match="twice"):
            read_part(ws, part, own={"population": None}, boxed={"population": None})
        with pytest.raises(Exception, match="no_such_layer"):
            read_part(ws, part, own={"no_such_layer": None})


def test_read_many_box_from_earlier_frames(pws, sample_ws):
    """``read_many``'s function as ``bbox``: the rows of ``read`` with the box it returns."""
    from geo_mz.core.errors import WorkspaceError

    units = sample_ws.read("admin_units")
    box = tuple(shapely.bounds(units.geometry.values[5]))
    seen = []

    def from_units(frames):
        seen.append(len(frames))
        return box

    code = ("adcode", "440703")
    got = pws.read_many([
        ("admin_units", {"prefix": code}),
        ("population", {"bbox": from_units, "prefix": code, "columns": ["pop_total"]}),
        ("roads", {"bbox": from_units}),  # no prefix: planned with the box, read after
        ("population", {"bbox": (0.0, 0.0, 1.0, 1.0)}),
    ])  # fmt: skip
    assert seen == [1, 1]  # the frames before it with a box of their own: the units
    assert_same_layer(got[1], sample_ws.read("population", bbox=box, prefix=code,
                                             columns=["pop_total"]))  # fmt: skip
    assert_same_layer(got[2], sample_ws.read("roads", bbox=box))
    assert len(got[3]) == 0 and len(got[1]) > 0
    with pytest.raises(WorkspaceError, match="read_many"):
        pws.read("population", bbox=from_units)
    for bad in (lambda f: (0.0, 0.0, math.nan, 1.0), lambda f: (1.0, 0.0, 0.0, 1.0),
                lambda f: (0.0, 0.0, 1.0), lambda f: None):  # fmt: skip
        with pytest.raises(WorkspaceError, match="bbox"):
            pws.read_many([("population", {"bbox": bad, "prefix": code})])
    with pytest.raises(WorkspaceError, match="not both"):
        pws.read_many([("roads", {"bbox": from_units, "mask": shapely.box(*box)})])


def test_reads_hold_the_collector_off_and_give_it_back(pws, sample_ws):
    import gc

    from geo_mz.core._postgis_read import gc_paused

    assert gc.isenabled()
    seen = []

    def box(frames):
        seen.append(gc.isenabled())  # called while the read builds its frames
        return tuple(shapely.bounds(frames[0].geometry.values[0]))

    code = ("adcode", "440703")
    got = pws.read_many([("admin_units", {"prefix": code}),
                         ("population", {"bbox": box, "prefix": code})])  # fmt: skip
    assert seen == [False] and gc.isenabled() and len(got[1]) > 0
    with pytest.raises(ZeroDivisionError), gc_paused():
        assert not gc.isenabled()
        1 / 0  # noqa: B018
    assert gc.isenabled()
    gc.disable()
    try:
        pws.read_many([("admin_units", {"prefix": code}), ("population", {"bbox": box})])
        with gc_paused():
            pass
        assert not gc.isenabled()  # the program's choice stays
    finally:
        gc.enable()


def test_read_part_runs_no_collection_on_a_geopackage(sample_ws):
    """The collector is held off while a part's rows are read (and runs as before after)."""
    import gc

    part = sample_parts(sample_ws)[0]
    cut = make_cut(part.geometry, CRS, 2000.0)
    starts = []

    def seen(phase, info):
        if phase == "start":
            starts.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        separate(sample_ws, part, cut)  # the premise: the same reads one by one collect
        unpaused = len(starts)
        starts.clear()
        got = together(sample_ws, part, cut)
        paused = len(starts)
    finally:
        gc.callbacks.remove(seen)
    # (72 against 1 here: the one put off until the reads end)
    assert unpaused > 10 and paused <= 1, (unpaused, paused)
    assert gc.isenabled() and len(got["population"]) > 1000


def test_own_rows_of_several_codes_and_layers_in_a_snapshot(pws, sample_ws):
    from geo_mz.scale.part_inputs import read_own_codes

    from .test_workspace_postgis_trips import traced

    units = sample_ws.read("admin_units")
    box = tuple(shapely.bounds(units.loc[units["adcode"] == "440703"].geometry.values[0]))
    towns = sorted(units.loc[units["level"] == "town", "adcode"].astype(str))[:3]
    codes = [*towns, "4407039999"]  # the last: no row
    for ws in (sample_ws, pws):
        for cols in (["pop_total"], None):
            got = read_own_codes(ws, "population", box, codes, columns=cols)
            want = [read_own(sample_ws, "population", box, c, columns=cols) for c in codes]
            assert len(got) == len(codes)
            for g, w in zip(got, want, strict=True):
                assert_same_layer(g, w)
            assert len(got[-1]) == 0 and min(len(g) for g in got[:-1]) > 0
    with traced(pws._url) as t, pws.snapshot() as w:
        read_own_codes(w, "population", box, codes)
        names = w.layers()  # the snapshot's catalog: no query
    assert t["trips"] == 3, t["text"]
    assert names == pws.layers() == sample_ws.layers()
