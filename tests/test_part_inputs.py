"""A part's reads: typed frames built at once, and its units through the code index.

Both are checked against independent readings: GDAL's (pyogrio) frame typed by a frozen,
value-by-value copy of the catalog typing, and the units of the part's box kept by the
code rule written out here.
"""

import datetime as dt
import shutil
import sqlite3
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

from geo_mz.core import gpkg_read
from geo_mz.core.catalog import get_spec, load_catalog
from geo_mz.core.gpkg_read import (
    GpkgRows,
    close_gpkg_connections,
    geoframe,
    read_gpkg_rows,
    to_geoframe,
)
from geo_mz.core.workspace import Workspace
from geo_mz.core.workspace_read import conform_types, read_layer
from geo_mz.scale.part_inputs import rows_where, units_of_part
from geo_mz.scale.partition import Part


def frozen_types(gdf: gpd.GeoDataFrame, spec) -> gpd.GeoDataFrame:
    """The catalog typing value by value (as conform_types was before it built columns)."""
    out = gdf.copy(deep=False)
    for f in spec.fields:
        if f.name not in out.columns:
            continue
        vals = out[f.name].tolist()
        if f.type == "integer":
            new = pd.array(pd.to_numeric(out[f.name]), dtype="Int64")
        elif f.type == "float":
            new = pd.to_numeric(out[f.name]).astype("float64")
        elif f.type == "boolean":
            new = pd.array([None if pd.isna(v) else bool(v) for v in vals], dtype="boolean")
        elif f.type == "date":
            new = pd.Series(
                [dt.date.fromisoformat(v[:10]) if isinstance(v, str) else None for v in vals],
                index=out.index,
                dtype=object,
            )
        elif f.type == "datetime":
            new = pd.to_datetime(out[f.name]).astype("datetime64[ms]")
        else:
            new = pd.Series([None if pd.isna(v) else str(v) for v in vals], dtype="str")
            new.index = out.index
        out[f.name] = new
    return out


def gdal(path: Path, layer: str, bbox: tuple | None = None, columns=None) -> gpd.GeoDataFrame:
    """GDAL's read in stored (fid) order, new index."""
    df = pyogrio.read_dataframe(path, layer=layer, bbox=bbox, fid_as_index=True, columns=columns)
    return df.sort_index(kind="stable").reset_index(drop=True)


def _geoms(kind: str, n: int, rng: np.random.Generator, multi: bool) -> list:
    xy = rng.uniform(0, 10, size=(n, 2))
    if kind == "Point":
        return list(shapely.points(xy))
    if kind == "LineString":
        return [shapely.LineString([p, p + rng.uniform(-1, 1, 2)]) for p in xy]
    polys = [shapely.box(x, y, x + 0.5, y + 0.3) for x, y in xy]
    if multi:  # some of two parts, stored as MultiPolygon
        return [
            shapely.MultiPolygon([p, shapely.box(*(np.array(p.bounds) + 0.6))])
            if i % 3 == 0
            else shapely.MultiPolygon([p])
            for i, p in enumerate(polys)
        ]
    return polys


def _values(ftype: str, n: int, rng: np.random.Generator, nulls: bool):
    miss = (rng.uniform(size=n) < 0.3) if nulls else np.zeros(n, bool)
    if ftype == "integer":
        ints = rng.integers(0, 99, n)
        return pd.array([None if m else int(v) for m, v in zip(miss, ints, strict=True)],
                        dtype="Int64")  # fmt: skip
    if ftype == "float":
        return np.where(miss, np.nan, rng.uniform(0, 9, n))
    if ftype == "boolean":
        bits = rng.integers(0, 2, n)
        return pd.array([None if m else bool(v) for m, v in zip(miss, bits, strict=True)],
                        dtype="boolean")  # fmt: skip
    if ftype == "date":
        return [None if m else f"2020-0{1 + i % 9}-1{i % 9}" for i, m in enumerate(miss)]
    if ftype == "datetime":
        return pd.Series([pd.NaT if m else pd.Timestamp(2021, 3, 1 + i % 20, 8)
                          for i, m in enumerate(miss)], dtype="datetime64[ms]")  # fmt: skip
    return [None if m else f"v{i}中" for i, m in enumerate(miss)]


@pytest.fixture(scope="module")
def every_layer(tmp_path_factory) -> Path:
    """Every catalog layer in one GeoPackage: nulls, booleans, dates, integers, text, extras."""
    path = tmp_path_factory.mktemp("typed") / "typed.gpkg"
    rng = np.random.default_rng(7)
    for i, (kind, spec) in enumerate(sorted(load_catalog().items())):
        n, nulls = 60, i % 2 == 0  # half the layers without nulls (ints and bools as such)
        cols = {f.name: _values(f.type, n, rng, nulls) for f in spec.fields}
        cols["extra_note"] = [None] * n if i % 3 == 0 else [f"x{j}" for j in range(n)]
        cols["extra_n"] = rng.integers(0, 5, n)
        if "name" in cols and i % 4 == 1:
            cols["name"] = [None] * n  # a text column of nulls only
        geoms = _geoms(spec.geometry, n, rng, multi=kind == "admin_units")
        df = gpd.GeoDataFrame(cols, geometry=geoms, crs="EPSG:4490")
        pyogrio.write_dataframe(df, path, layer=kind)
    return path


BOXES = [(-1, -1, 11, 11), (2, 2, 5, 6), (4.5, 0, 4.6, 10), (20, 20, 21, 21), (7, 1, 9.5, 4)]


def test_typed_reads_equal_gdal_typed_value_by_value(every_layer):
    path = every_layer
    built = 0
    for kind in sorted(load_catalog()):
        spec = get_spec(kind)
        for box in BOXES:
            want = frozen_types(gdal(path, kind, box), spec)
            got = read_layer(path, kind, [kind], bbox=box)
            assert_geodataframe_equal(got, want, check_dtype=True, check_crs=True)
            # conform_types (its frame built once too) gives the frozen typing
            assert_geodataframe_equal(conform_types(gdal(path, kind, box), spec), want)
            cols = [f.name for f in spec.fields][1:4]
            part = read_layer(path, kind, [kind], bbox=box, columns=cols)
            assert_geodataframe_equal(part, want[[c for c in want.columns if c in cols]
                                                 + ["geometry"]])  # fmt: skip
            rows = read_gpkg_rows(path, kind, box)
            built += isinstance(rows, GpkgRows)
            if box == BOXES[3]:
                assert len(got) == 0
    # Every layer but the two with date-time columns (GDAL's types) built here.
    assert built == (len(load_catalog()) - 2) * len(BOXES)


def test_whole_layer_reads_equal_gdal_typed_value_by_value(every_layer):
    for kind in ("roads", "place_names", "hazards", "admin_units"):
        spec = get_spec(kind)
        want = frozen_types(gdal(every_layer, kind), spec)
        assert_geodataframe_equal(read_layer(every_layer, kind, [kind]), want, check_dtype=True)


def test_geoframe_equals_the_constructor():
    crs = "EPSG:4490"
    cols = {"a": np.array(["x", None, "z"], dtype=object), "b": np.array([1.0, np.nan, 2.0]),
            "c": np.array([None, None, None], dtype=object)}  # fmt: skip
    geoms = np.array([shapely.Point(0, 0), None, shapely.Point(1, 1)], dtype=object)
    want = gpd.GeoDataFrame(pd.DataFrame(cols), geometry=geoms, crs=crs)
    got = geoframe(cols, geoms, crs)
    assert_geodataframe_equal(got, want, check_dtype=True, check_crs=True)
    assert type(got) is gpd.GeoDataFrame and got.geometry.name == "geometry"
    assert got.to_crs(3857).crs == want.to_crs(3857).crs  # a frame that works as one
    empty = geoframe({"a": np.array([], dtype=object)}, np.array([], dtype=object), crs)
    assert_geodataframe_equal(
        empty, gpd.GeoDataFrame(pd.DataFrame({"a": np.array([], dtype=object)}),
                                geometry=np.array([], dtype=object), crs=crs))  # fmt: skip
    df = pd.DataFrame({"v": [1, 2], "geom": gpd.array.from_shapely([None, None], crs=crs)})
    df.attrs["k"] = 1
    out = to_geoframe(df, "geom")
    assert_geodataframe_equal(out, gpd.GeoDataFrame(df, geometry="geom"))
    assert out.attrs == {"k": 1} and out.geometry.name == "geom"


# ------------------------------------------------------------------ units through the index


def _editor(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the functions a GeoPackage's R-tree triggers call."""

    def geom(b):
        return shapely.from_wkb(b[8 + {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}[(b[3] >> 1) & 7] :])

    con = sqlite3.connect(path)
    con.create_function("ST_IsEmpty", 1, lambda b: int(b is None or shapely.is_empty(geom(b))))
    for i, name in enumerate(("ST_MinX", "ST_MinY", "ST_MaxX", "ST_MaxY")):
        con.create_function(name, 1, lambda b, i=i: float(geom(b).bounds[i]))
    return con


def _box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    """A box in Guangdong (lon 113 + x, lat 23 + y)."""
    return shapely.box(113 + x0, 23 + y0, 113 + x1, 23 + y1)


def _units() -> gpd.GeoDataFrame:
    """Two provinces, three cities, counties, towns and villages (padded 6/9/12-digit codes)."""
    rows = []

    def add(code, level, parent, geom):
        rows.append({"adcode": code, "name": f"u{code}", "level": level,
                     "parent_adcode": parent, "geometry": geom})  # fmt: skip

    counties = {"440103": (0, 0), "440104": (1, 0), "440203": (2, 0), "450102": (5, 0)}
    add("440000", "province", None, _box(0, 0, 3, 1))
    add("450000", "province", None, _box(5, 0, 6, 1))
    add("440100", "city", "440000", _box(0, 0, 2, 1))
    add("440200", "city", "440000", _box(2, 0, 3, 1))
    add("450100", "city", "450000", _box(5, 0, 6, 1))
    for code, (x, y) in counties.items():
        add(code, "county", code[:4] + "00", _box(x, y, x + 1, y + 1))
        for t in range(2):
            town = f"{code}00{t + 1}"
            tx = x + 0.5 * t
            add(town, "town", code, _box(tx, y, tx + 0.5, y + 1))
            for v in range(2):
                add(f"{town}00{v + 1}", "village", town,
                    _box(tx, y + 0.5 * v, tx + 0.5, y + 0.5 * v + 0.5))  # fmt: skip
    return gpd.GeoDataFrame(rows, crs="EPSG:4490")


def _old_units_of_part(path: Path, part: Part) -> gpd.GeoDataFrame:
    """The units of the part's box (GDAL) kept by the code rule, value by value."""
    units = frozen_types(gdal(path, "admin_units", tuple(shapely.bounds(part.geometry))),
                         get_spec("admin_units"))  # fmt: skip
    c = part.code
    keep = [isinstance(u, str) and (u.startswith(c) or c.startswith(u))
            for u in units["adcode"].astype(object).tolist()]  # fmt: skip
    return units[np.array(keep, dtype=bool)].reset_index(drop=True)


def _by_index(path: Path, box: tuple, code: str) -> int | None:
    """Rows the code index gives for a part (None: it is not used)."""
    read_gpkg_rows(path, "admin_units", box)  # the layer's description, kept per connection
    f = gpkg_read._connection(path)
    info = f.layers["admin_units"]
    rows = gpkg_read._own_by_index(f.con, info, ("adcode", code), gpkg_read._lineage(code), "")
    return None if rows is None else len(rows)


class BoxOnly:
    """A workspace that reads by box only (as other backends: no code index)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def read(self, kind: str, *, bbox=None) -> gpd.GeoDataFrame:
        return self.ws.read(kind, bbox=bbox)


@pytest.fixture
def units_ws(tmp_path) -> Workspace:
    units = _units()
    path = tmp_path / "units.gpkg"
    ws = Workspace.create(path, name="units", adcode="440000", bounds=(112, 22, 120, 25))
    prov = {"synthetic": True, "source": "test", "method": "hand"}
    ws.write_layers({"admin_units": units}, {"admin_units": prov})
    with sqlite3.connect(path) as con:  # geo_mz's writes index the code field
        idx = [r[1] for r in con.execute("PRAGMA index_list(admin_units)")]
    assert "admin_units_adcode" in idx
    with _editor(path) as con:  # codes other tools may store: short ancestors, "", null
        con.execute("UPDATE admin_units SET adcode = '44' WHERE adcode = '440000'")
        con.execute("UPDATE admin_units SET adcode = '4401' WHERE adcode = '440100'")
        con.execute("UPDATE admin_units SET adcode = '' WHERE adcode = '450000'")
        con.execute("UPDATE admin_units SET adcode = NULL WHERE adcode = '450100'")
        # a unit without geometry: in no box (GDAL leaves it out)
        con.execute("INSERT INTO admin_units (geom, adcode, name, level) "
                    "VALUES (NULL, '440103009', 'nowhere', 'town')")  # fmt: skip
    close_gpkg_connections()
    return Workspace(path)


def _parts(ws: Workspace) -> list[Part]:
    units = ws.read("admin_units")
    parts = [Part(str(c), "p", g) for c, g in zip(units["adcode"], units.geometry, strict=True)
             if isinstance(c, str) and len(c) in (6, 9) and g is not None]  # fmt: skip
    region = _box(0, 0, 3, 1)
    parts += [Part("4401", "city", _box(0, 0, 2, 1)), Part("44", "prov", region),
              Part("999999", "none", region), Part("4", "one", region)]  # fmt: skip
    return parts


def test_units_of_part_through_the_index_equal_the_box_read(units_ws, tmp_path):
    parts = _parts(units_ws)
    assert len(parts) > 15
    for p in parts:
        want = _old_units_of_part(units_ws.path, p)
        assert_geodataframe_equal(units_of_part(units_ws, p), want, check_dtype=True)
        assert_geodataframe_equal(units_of_part(BoxOnly(units_ws), p), want, check_dtype=True)
    county = next(p for p in parts if p.code == "440103")
    got = units_of_part(units_ws, county)
    # Its own units, and the short-coded ancestors in its box ('44', '4401'; not '', the
    # other province's), in stored order.
    assert got["adcode"].tolist() == ["44", "4401", "440103", "440103001", "440103001001",
                                      "440103001002", "440103002", "440103002001",
                                      "440103002002"]  # fmt: skip
    # Read through the code index here (not the box's every unit), not where a number is.
    box = tuple(shapely.bounds(county.geometry))
    assert _by_index(units_ws.path, box, "440103") == len(got) + 1  # + the one without geometry
    # Without the index, and with a blob in the code field (a text column holds no number:
    # SQLite stores one as text there): the box read, the same rows.
    plain = tmp_path / "plain.gpkg"
    shutil.copy(units_ws.path, plain)
    with sqlite3.connect(plain) as con:
        con.execute("DROP INDEX admin_units_adcode")
    number = tmp_path / "number.gpkg"
    shutil.copy(units_ws.path, number)
    with _editor(number) as con:
        con.execute("UPDATE admin_units SET adcode = CAST(adcode AS BLOB) WHERE adcode = '440104'")
    for path in (plain, number):
        ws = Workspace(path)
        for p in parts:
            want = _old_units_of_part(path, p)
            assert_geodataframe_equal(units_of_part(ws, p), want, check_dtype=True)
    assert _by_index(plain, box, "440103") is None and _by_index(number, box, "440103") is None
    own = units_of_part(Workspace(number), Part("440104", "c", _box(1, 0, 2, 1)))
    assert "440104" in set(own["adcode"])  # GDAL's text of the blob, as before


def test_units_of_part_through_gdal_equal_the_box_read(units_ws, monkeypatch):
    """Many rows (a province's units) go through GDAL with the same SQL: the same frames."""
    monkeypatch.setattr(gpkg_read, "_GDAL_ROWS", 1)
    close_gpkg_connections()
    frames = 0
    for p in _parts(units_ws):
        box = tuple(shapely.bounds(p.geometry))
        got = read_gpkg_rows(units_ws.path, "admin_units", box, prefix=("adcode", p.code),
                             ancestors=True)  # fmt: skip
        assert isinstance(got, gpd.GeoDataFrame)  # GDAL's frame
        frames += len(got) > 0
        want = _old_units_of_part(units_ws.path, p)
        assert_geodataframe_equal(units_of_part(units_ws, p), want, check_dtype=True)
    assert frames > 10
    close_gpkg_connections()


def test_rows_where_equals_boolean_indexing(every_layer):
    rng = np.random.default_rng(3)
    for kind in ("roads", "elder_care", "admin_units", "place_names"):
        gdf = read_layer(every_layer, kind, [kind], bbox=BOXES[1])
        gdf.index = gdf.index * 3 + 5  # labels that are not positions
        for mask in (rng.uniform(size=len(gdf)) < 0.5, np.ones(len(gdf), bool),
                     np.zeros(len(gdf), bool)):  # fmt: skip
            assert_geodataframe_equal(rows_where(gdf, mask), gdf[mask], check_dtype=True)


def test_roads_in_cut_equals_reprojecting_the_box_then_filtering(sample_ws):
    """The kept roads reprojected once: the frame ``to_crs`` then a boolean filter give."""
    from geo_mz.network.graph import NETWORK_ROAD_FIELDS
    from geo_mz.scale.cut import make_cut
    from geo_mz.scale.part_inputs import read_box, roads_in_cut

    crs = sample_ws.metadata["measure_crs"]
    units = sample_ws.read("admin_units")
    town = units[units["level"] == "town"].iloc[0].geometry
    cut = make_cut(town, crs, 500.0)
    for columns in (None, list(NETWORK_ROAD_FIELDS)):
        box = read_box(sample_ws, "roads", cut.lonlat_bbox, columns)
        got = roads_in_cut(sample_ws, cut, None, columns)
        moved = box.to_crs(crs)
        want = moved[shapely.intersects(cut.polygon, np.asarray(moved.geometry.values))]
        assert 0 < len(got) < len(box)  # the filter dropped the box's corners
        # Read through the cut's mask (fewer rows than the box), the same roads: only the
        # labels, positions in what was read, differ.
        masked = read_box(sample_ws, "roads", cut.lonlat_bbox, columns, cut)
        assert len(got) <= len(masked) < len(box)
        assert_geodataframe_equal(
            got.reset_index(drop=True), want.reset_index(drop=True), check_less_precise=False
        )
        assert shapely.equals_identical(got.geometry.values, want.geometry.values).all()
        # Given the box's rows, the labels are the box's.
        assert_geodataframe_equal(roads_in_cut(sample_ws, cut, box, columns), want)


MASKS = [
    shapely.Polygon([(1, 1), (9, 2), (4, 9)]),  # a triangle: the box's corners left out
    shapely.Polygon([(0, 0), (10, 0), (10, 2), (2, 2), (2, 10), (0, 10)]),  # an L
    shapely.box(2, 2, 5, 6).buffer(0.7, quad_segs=3),
    shapely.box(20, 20, 21, 21),  # nothing there
]


def test_mask_reads_equal_gdal_mask_typed(every_layer):
    """``mask=``: GDAL's rows (pyogrio's ``mask``), typed, from the strips of the R-tree."""
    path = every_layer
    prefixed = 0
    for kind in ("roads", "population", "admin_units", "elder_care", "place_names"):
        spec = get_spec(kind)
        for mask in MASKS:
            df = pyogrio.read_dataframe(path, layer=kind, mask=mask, fid_as_index=True)
            want = frozen_types(df.sort_index(kind="stable").reset_index(drop=True), spec)
            got = read_layer(path, kind, [kind], mask=mask)
            assert isinstance(read_gpkg_rows(path, kind, (0, 0, 0, 0), mask=mask), GpkgRows)
            assert_geodataframe_equal(got, want, check_dtype=True, check_crs=True)
            if mask is MASKS[0] and kind == "roads":
                box = read_layer(path, kind, [kind], bbox=mask.bounds)
                assert 0 < len(got) < len(box)
            if "adcode" in want.columns:  # a prefix too: the masked rows that start with it
                own = read_layer(path, kind, [kind], mask=mask, prefix=("adcode", "v1"))
                keep = want["adcode"].str.startswith("v1").fillna(False).to_numpy(bool)
                assert_geodataframe_equal(own, want[keep].reset_index(drop=True))
                prefixed += int(keep.any())
    assert prefixed >= 3


def test_mask_strips_hold_every_point_of_the_mask():
    rng = np.random.default_rng(11)
    for mask in [*MASKS[:3], shapely.Point(5, 5).buffer(3.0).union(shapely.box(0, 0, 1, 8))]:
        strips = gpkg_read.mask_strips(mask)
        assert 1 <= len(strips) <= 16
        boxes = shapely.box(*np.array(strips).T)
        pts = shapely.points(rng.uniform(-1, 11, size=(4000, 2)))
        inside = shapely.intersects(mask, pts)
        covered = shapely.STRtree(boxes).query(pts[inside], predicate="intersects")[0]
        assert len(np.unique(covered)) == inside.sum()  # every point of the mask in a strip
        # vertices and boundary points too (closed boxes)
        ring = shapely.segmentize(shapely.boundary(mask), 0.1)
        edge = shapely.points(shapely.get_coordinates(ring))
        hit = shapely.STRtree(boxes).query(edge, predicate="intersects")[0]
        assert len(np.unique(hit)) == len(edge)
        assert sum((b[2] - b[0]) * (b[3] - b[1]) for b in strips) < shapely.area(
            shapely.box(*mask.bounds)
        )  # less than the one box
    assert gpkg_read.mask_strips(shapely.Polygon()) == []


def test_rtree_extent_holds_the_exact_extent_within_a_float(every_layer):
    for kind in ("roads", "population", "admin_units"):
        _, b = pyogrio.read_bounds(every_layer, layer=kind)
        exact = (b[0].min(), b[1].min(), b[2].max(), b[3].max())
        got = gpkg_read.rtree_extent(every_layer, kind)
        assert got[0] <= exact[0] and got[1] <= exact[1]
        assert got[2] >= exact[2] and got[3] >= exact[3]
        assert np.allclose(got, exact, rtol=0, atol=1e-5)
    assert gpkg_read.rtree_extent(every_layer, "no_such_layer") is None


def test_part_crs_is_the_zone_measure_crs_for_gives_without_a_frame():
    import geopandas as gpd
    import numpy as np
    import shapely

    from geo_mz.core.projection import measure_crs_for
    from geo_mz.scale.part_inputs import part_crs
    from geo_mz.scale.partition import Part

    rng = np.random.default_rng(3)
    lon = rng.uniform(75.0, 134.0, 300)
    edges = np.arange(76.5, 133.6, 3.0)  # zone borders: a middle right on them, or a hair off
    lon = np.r_[lon, edges, edges + 1e-9, edges - 1e-9]
    lat = rng.uniform(18.0, 53.0, len(lon))
    half = rng.uniform(0.001, 1.5, len(lon))
    for x, y, h in zip(lon, lat, half, strict=True):
        g = shapely.box(x - h, y - h / 2, x + h, y + h / 2)
        want = measure_crs_for(gpd.GeoDataFrame(geometry=[g], crs="EPSG:4490"))
        assert part_crs(Part("1", "p", g)) == want, (x, y, h)
    assert part_crs(Part("1", "p", shapely.box(113, 22, 114, 23)), "EPSG:4547") == "EPSG:4547"
