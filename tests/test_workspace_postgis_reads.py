"""PostGIS reads of a part: ``columns=``, the part-code index, and the columns decoded whole.

Each read is compared with the GeoPackage's read of the same data and with a frozen copy of the
value-by-value reading it replaced, on layers with nulls, booleans, dates, datetimes, text
(Chinese too), integers, floats (infinities) and extra columns.
"""

from __future__ import annotations

import datetime as dt
import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo_mz.core.catalog import get_spec
from geo_mz.core.workspace import Workspace
from geo_mz.core.workspace_read import conform_types

from .test_workspace_postgis import assert_same_layer
from .workspace_layers import PROV, incidents, markers

BOX = (113.0, 22.55, 113.1, 22.65)


def _layers(sample_ws) -> dict[str, gpd.GeoDataFrame]:
    """Sample layers with nulls and extras put in (optional fields only, as the checks allow)."""
    shelters = sample_ws.read("shelters").head(40).copy()
    n = len(shelters)
    shelters["occupancy_persons"] = pd.array([None if i % 3 == 0 else i for i in range(n)],
                                             dtype="Int64")  # fmt: skip
    shelters["is_open"] = pd.array([None if i % 4 == 0 else i % 2 == 0 for i in range(n)],
                                   dtype="boolean")  # fmt: skip
    shelters["address"] = [None if i % 5 == 0 else f"江门路{i}号" for i in range(n)]
    # Codes: the part's, its towns' and villages', a neighbour's, none (odd text round the
    # range's bounds: test_the_byte_range_is_starts_with_in_the_database).
    codes = ["440703", "440703001", None, "440704", "440703001002", "440705"]
    shelters["adcode"] = [codes[i % len(codes)] for i in range(n)]
    shelters["note"] = [None if i % 2 else f"备注{i}" for i in range(n)]  # extras
    shelters["rank"] = pd.array([None if i % 6 == 0 else i * 10 for i in range(n)], dtype="Int64")
    shelters["flag"] = [i % 3 == 0 for i in range(n)]
    shelters["score"] = [
        math.inf if i == 1 else (math.nan if i % 7 == 0 else i / 3) for i in range(n)
    ]
    names = sample_ws.read("place_names").head(30).copy()
    names["approved_date"] = [None if i % 2 else dt.date(2000 + i, 1 + i % 12, 1 + i)
                              for i in range(len(names))]  # fmt: skip
    roads = sample_ws.read("roads")
    roads = roads[roads.intersects(shapely.box(*BOX).buffer(0.02))].copy()
    m = len(roads)
    roads["oneway"] = pd.array([None if i % 5 == 0 else i % 2 == 0 for i in range(m)],
                               dtype="boolean")  # fmt: skip
    roads["lanes"] = pd.array([None if i % 4 == 0 else 1 + i % 3 for i in range(m)], dtype="Int64")
    roads["speed_kmh"] = [math.nan if i % 9 == 0 else 5.0 + i % 40 for i in range(m)]
    return {
        "shelters": shelters,
        "place_names": names,
        "roads": roads,
        "admin_units": sample_ws.read("admin_units"),
        "population": sample_ws.read("population").iloc[::6].reset_index(drop=True),
        "boundary_markers": markers(),
        "incidents": incidents(),
    }


@pytest.fixture(scope="module")
def pair(pg_url, sample_ws, tmp_path_factory):
    """The same mixed layers in a GeoPackage and a PostGIS workspace."""
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    meta = {"name": "蓬江区", "adcode": "440703", "bounds": sample_ws.bounds}
    gws = Workspace.create(tmp_path_factory.mktemp("reads") / "ws.gpkg", **meta)
    pws = PostgisWorkspace.create(pg_url, schema="reads_mixed", replace=True, **meta)
    layers = _layers(sample_ws)
    prov = dict.fromkeys(layers, PROV)
    for ws in (gws, pws):
        res = ws.write_layers(layers, prov)
        assert all(r.ok for r in res.values()), {k: r.problems for k, r in res.items()}
    return gws, pws


def _frozen_read(pws, kind, bbox=None, prefix=None) -> gpd.GeoDataFrame:
    """The reading this change replaced, frozen: SQL box test and prefix, values one by one."""
    from psycopg import sql

    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core._postgis_tables import table_columns

    spec = get_spec(kind)
    with pooled_connection(pws._url) as conn:
        columns = [(n, t) for n, t in table_columns(conn, pws.schema, kind)
                   if n not in ("fid", "geom")]  # fmt: skip
        select = [sql.Identifier(n) for n, _ in columns] + [sql.SQL("ST_AsBinary(geom)")]
        query = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(select), sql.Identifier(pws.schema, kind)
        )
        params: tuple = ()
        if bbox is not None:
            env = sql.SQL("ST_MakeEnvelope(%s, %s, %s, %s, 4490)")
            query += sql.SQL(" WHERE geom && {e} AND ST_Intersects(geom, {e})").format(e=env)
            params = tuple(float(b) for b in bbox) * 2
        if prefix is not None:
            query += sql.SQL(" AND " if bbox is not None else " WHERE ")
            query += sql.SQL("starts_with({}::text, %s)").format(sql.Identifier(prefix[0]))
            params += (str(prefix[1]),)
        with conn.cursor(binary=True) as cur:
            cur.execute(query + sql.SQL(" ORDER BY fid"), params)
            rows = cur.fetchall()
    data = {n: _frozen_values([r[i] for r in rows], t, n in spec.field_names)
            for i, (n, t) in enumerate(columns)}  # fmt: skip
    wkb = [None if r[-1] is None else bytes(r[-1]) for r in rows]
    geoms = shapely.from_wkb(wkb) if rows else np.array([], dtype=object)
    gdf = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms), crs="EPSG:4490")
    return conform_types(gdf, spec)


def _frozen_values(values: list, pg_type: str, is_field: bool) -> pd.Series:
    if pg_type == "date":
        return pd.Series([None if v is None else v.isoformat() for v in values], dtype=object)
    if is_field or not values:
        return pd.Series(values, dtype=object)
    has_null = any(v is None for v in values)
    if pg_type == "bigint":
        return pd.Series(values, dtype="float64" if has_null else "int64")
    if pg_type == "double precision":
        return pd.Series([np.nan if v is None else v for v in values], dtype="float64")
    if pg_type == "boolean":
        return pd.Series(values, dtype=object if has_null else bool)
    if pg_type == "timestamp":
        return pd.Series(pd.to_datetime(pd.Series(values, dtype=object))).astype("datetime64[ms]")
    return pd.Series(values, dtype="str")


READS = [
    {},
    {"bbox": BOX},
    {"bbox": (113.3, 22.9, 113.4, 23.0)},  # nothing there
    {"prefix": ("adcode", "440703")},
    {"prefix": ("adcode", "44070")},
    {"prefix": ("adcode", "")},
    {"bbox": BOX, "prefix": ("adcode", "440703")},
    {"bbox": BOX, "prefix": ("adcode", "9")},  # no rows
]


@pytest.mark.parametrize("kw", READS, ids=[str(i) for i in range(len(READS))])
def test_reads_equal_the_geopackage_and_the_value_by_value_reading(pair, kw):
    gws, pws = pair
    for kind in gws.layers():
        if "prefix" in kw and "adcode" not in gws.read(kind).columns:
            continue
        got = pws.read(kind, **kw)
        assert_same_layer(got, _frozen_read(pws, kind, **kw))
        if len(got):  # (an empty GeoPackage read types its extras as pyogrio does)
            assert_same_layer(got, gws.read(kind, **kw))
    shelters = pws.read("shelters", **kw)
    if len(shelters):
        assert shelters["adcode"].isna().any() == ("prefix" not in kw)


@pytest.mark.parametrize(
    ("kind", "columns", "kw"),
    [
        ("shelters", ["is_open", "shelter_id", "rank", "note"], {}),
        ("shelters", ["capacity_persons", "nope"], {"bbox": BOX}),  # an unknown name: left out
        ("shelters", ["score"], {"bbox": BOX, "prefix": ("adcode", "440703")}),  # + adcode
        ("shelters", [], {"prefix": ("adcode", "4407")}),
        ("population", ["cell_id", "adcode", "pop_total", "pop_60plus"],
         {"bbox": BOX, "prefix": ("adcode", "440703")}),
        ("roads", ["road_id", "road_class", "speed_kmh", "oneway"], {"bbox": BOX}),
        ("place_names", ["approved_date", "name"], {}),
        ("incidents", ["reported_at", "people_affected"], {}),
    ],
)  # fmt: skip
def test_columns_read_equals_the_geopackage(pair, kind, columns, kw):
    gws, pws = pair
    got = pws.read(kind, columns=columns, **kw)
    want = gws.read(kind, columns=columns, **kw)
    assert_same_layer(got, want)
    full = pws.read(kind, **kw)
    assert list(got.columns)[:-1] == [c for c in full.columns if c in set(columns) | (
        {kw["prefix"][0]} if "prefix" in kw else set())]  # fmt: skip
    pd.testing.assert_frame_equal(pd.DataFrame(got), pd.DataFrame(full[list(got.columns)]))


def _plan(pws, kind: str, code: str, bbox=None) -> str:
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core._postgis_read import layer_query

    query, params = layer_query(pws.schema, kind, [("adcode", "text")], srid=4490, bbox=bbox,
                                prefix=("adcode", "text", code))  # fmt: skip
    with pooled_connection(pws._url) as conn, conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")  # a small table: ask what can be used
        rows = conn.execute(b"EXPLAIN " + query.as_bytes(conn), params).fetchall()
    return "\n".join(r[0] for r in rows)


def test_the_part_code_index_is_made_at_write_and_answers_a_prefix_read(pair):
    gws, pws = pair
    from geo_mz.core._postgis_db import pooled_connection

    with pooled_connection(pws._url) as conn:
        made = {r[0]: r[1] for r in conn.execute(
            "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = %s "
            "AND indexname LIKE '%%_adcode'", (pws.schema,)).fetchall()}  # fmt: skip
    assert set(made) == {k for k in gws.layers() if "adcode" in gws.read(k).columns}
    assert 'COLLATE "C"' in made["population"]
    codes = gws.read("population")["adcode"].value_counts()
    plan = _plan(pws, "population", str(codes.index[-1]))  # a village's few rows
    assert "population_adcode" in plan, plan
    assert "starts_with" not in plan


def test_a_workspace_without_the_index_reads_the_same_rows(pair, pg_url):
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core.workspace_postgis import PostgisWorkspace

    gws, pws = pair
    old = PostgisWorkspace.from_workspace(gws, pg_url, schema="reads_old", replace=True)
    with pooled_connection(old._url) as conn:
        conn.execute('DROP INDEX reads_old."population_adcode", reads_old."shelters_adcode"')
    code = str(gws.read("population")["adcode"].value_counts().index[-1])
    assert "population_adcode" not in _plan(old, "population", code)
    for kind in ("population", "shelters"):
        for kw in ({"prefix": ("adcode", "440703")}, {"bbox": BOX, "prefix": ("adcode", "4407")}):
            assert_same_layer(old.read(kind, **kw), pws.read(kind, **kw))


def test_the_byte_range_is_starts_with_in_the_database(pg_url):
    """The range a prefix read asks for, against the database's own ``starts_with``."""
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core._postgis_read import prefix_range

    texts = ["", "4", "44", "440703", "4407031", "440704", "44070", "440703\u00e9", "a",
             "\ud7ff".encode("utf-16", "surrogatepass").decode("utf-16"), "x\ud7ffy", "x\ue000",
             "x\U0010ffff", "x\U0010fffe", "é", "éa", "f", "ÿ", "Ā"]  # fmt: skip
    with pooled_connection(pg_url) as conn:
        for code in ["440703", "44", "x\ud7ff", "é", "x\U0010fffe", "ÿ"]:
            lo, hi = prefix_range(code)
            got = {r[0] for r in conn.execute(
                'SELECT t FROM unnest(%s::text[]) AS t WHERE t COLLATE "C" >= %s '
                'AND t COLLATE "C" < %s', (texts, lo, hi)).fetchall()}  # fmt: skip
            want = {r[0] for r in conn.execute(
                "SELECT t FROM unnest(%s::text[]) AS t WHERE starts_with(t, %s)",
                (texts, code)).fetchall()}  # fmt: skip
            assert got == want == {t for t in texts if t.startswith(code)}, code
    assert prefix_range("") is None and prefix_range("x\U0010ffff") is None


def test_geometries_from_wkb_equal_shapelys():
    from geo_mz.core._postgis_read import geometries

    pts = [shapely.Point(113.1, 22.6), shapely.Point(-0.0, 1e-300), shapely.Point()]
    cases = [
        [shapely.to_wkb(p) for p in pts[:2]],  # the numpy path
        [shapely.to_wkb(p) for p in pts],  # an empty point among them
        [shapely.to_wkb(pts[0]), None],
        [shapely.to_wkb(pts[0], byte_order=0)],  # big-endian: by shapely
        [shapely.to_wkb(shapely.LineString([(0, 0), (1, 1)]))],
        [],
    ]
    for wkb in cases:
        got = geometries(wkb)
        want = shapely.from_wkb(wkb) if wkb else np.array([], dtype=object)
        assert shapely.to_wkb(got).tolist() == shapely.to_wkb(want).tolist()
        assert shapely.is_missing(got).tolist() == shapely.is_missing(want).tolist()


def test_the_catalog_query_equals_the_per_table_reads(pair):
    """One query for names, storage CRS and columns: what three kinds of query said before."""
    from geo_mz.core._postgis_db import pooled_connection
    from geo_mz.core._postgis_tables import read_catalog, table_columns

    gws, pws = pair
    with pooled_connection(pws._url) as conn:
        names, crs, tables, indexes = read_catalog(conn, pws.schema)
        assert ("population", "adcode") in indexes
        assert names == pws.layers() == gws.layers()
        assert crs == pws.metadata["storage_crs"]
        assert set(tables) >= set(names)
        for table, cols in tables.items():
            assert cols == table_columns(conn, pws.schema, table)
        assert ("reported_at", "timestamp") in tables["incidents"]
