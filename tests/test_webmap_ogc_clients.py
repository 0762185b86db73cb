"""The web map's OGC API - Features read by the GIS clients people use, over a real socket.

- GDAL's OAPIF driver (what QGIS uses; the GDAL bundled with pyogrio) lists and reads every
  collection: counts and bounds equal the workspace's layers, paging follows ``next`` links, a
  spatial filter becomes ``bbox`` + ``bbox-crs`` in the storage CRS (EPSG:4490, lat/lon axis
  order), a ``-where`` equality on a queryable goes to the server, and the layer CRS is EPSG:4490
  (from ``storageCrs``), or a projected CRS when asked (``CRS`` open option).
- OWSLib (``owslib.ogcapi.features.Features``, which sends ``Accept: */*``) reads the landing
  page, conformance, every collection page by page, bbox (2D, 3D, ``bbox-crs``), ``crs`` with
  its ``Content-Crs``, queryables and schema.

GDAL runs in a child process: pyogrio holds the GIL while GDAL waits for the HTTP answer, so a
GDAL client in the test process would starve the in-process server thread.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pyproj
import pytest
import shapely

pytest.importorskip("flask")
pytest.importorskip("pyogrio")
owslib_features = pytest.importorskip("owslib.ogcapi.features")

from webmap import create_app  # noqa: E402
from webmap.testing import basic_auth, fresh_settings, running_server, sample_base  # noqa: E402

pytestmark = pytest.mark.slow

EPSG4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
BOX = (113.0, 22.5, 113.2, 22.7)  # lon/lat, in the middle of the Pengjiang sample
TOL = 2e-7  # coordinates are written with 7 decimals of a degree

GDAL_CLIENT = textwrap.dedent(
    """
    import json, sys
    import pyogrio
    url, jobs = sys.argv[1], json.loads(sys.argv[2])
    out = {"layers": [list(x) for x in pyogrio.list_layers(url)], "reads": []}
    for job in jobs:
        layer = job.pop("layer")
        opts = job.pop("open_options", {})
        if "bbox" in job:
            job["bbox"] = tuple(job["bbox"])
        df = pyogrio.read_dataframe(url, layer=layer, **job, **opts)
        out["reads"].append({
            "layer": layer,
            "n": len(df),
            "bounds": [float(x) for x in df.total_bounds] if len(df) else None,
            "crs": df.crs.to_string() if df.crs is not None else None,
            "ids": sorted(str(x) for x in df["id"]) if "id" in df.columns else [],
            "columns": {c: str(t) for c, t in df.dtypes.items()},
        })
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A real server on the sample workspace, with incidents and a road closure added."""
    base = sample_base(tmp_path_factory.getbasetemp() / "webmap_base")
    app = create_app(fresh_settings(base, tmp_path_factory.mktemp("ogc_clients")))
    client = app.test_client()
    for i, (lon, lat, when) in enumerate(
        [
            (113.05, 22.60, "2024-07-01T08:00:00Z"),
            (113.08, 22.65, "2024-07-02T09:30:00Z"),
            (113.02, 22.62, "2024-07-03T10:00:00Z"),
        ]
    ):
        r = client.post(
            "/collections/incidents/items",
            json={
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {"kind": "flood", "reported_at": when, "description": f"测试{i}"},
            },
            headers=basic_auth("reporter1"),
        )
        assert r.status_code == 201, r.json
    line = {"type": "LineString", "coordinates": [[113.0, 22.7], [113.004, 22.701]]}
    r = client.post(
        "/collections/road_closures/items",
        json={"type": "Feature", "geometry": line, "properties": {"reason": "积水"}},
        headers=basic_auth("commander1"),
    )
    assert r.status_code == 201, r.json
    store = app.extensions["webmap"].store
    with running_server(app) as root:
        yield root, store


def run_gdal(root: str, jobs: list[dict]) -> dict:
    """Run GDAL's OAPIF driver in a child process on ``OAPIF:<root>``; return what it read."""
    proc = subprocess.run(
        [sys.executable, "-c", GDAL_CLIENT, f"OAPIF:{root}", json.dumps(jobs)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def _bbox_count(g, box) -> int:
    """Features intersecting a lon/lat box, counted with shapely (independent of the server)."""
    return int(shapely.intersects(g.geometry.to_numpy(), shapely.box(*box)).sum())


def test_gdal_reads_every_collection_with_counts_and_bounds(served):
    root, store = served
    names = store.layer_names()
    out = run_gdal(root, [{"layer": n} for n in names])
    assert [name for name, _ in out["layers"]] == names  # all 18, in catalog order
    assert len(names) == 18
    for got in out["reads"]:
        g = store.frame(got["layer"])
        assert got["n"] == len(g), got["layer"]
        assert got["crs"] == "EPSG:4490", got["layer"]  # storageCrs
        if len(g):
            # GDAL read lat/lon (EPSG:4490 axis order) and swapped back to lon/lat
            assert np.allclose(got["bounds"], g.total_bounds, atol=TOL), got["layer"]
    by_layer = {r["layer"]: r for r in out["reads"]}
    assert by_layer["incidents"]["n"] == 3
    assert by_layer["population"]["n"] > 30_000  # 31 pages of 1000 followed by `next` links
    ids = by_layer["shelters"]["ids"]
    assert ids == sorted(str(x) for x in store.frame("shelters")["shelter_id"])
    # the GeoJSON schema (describedby) types the fields, even of an empty layer
    hazards = by_layer["hazards"]["columns"]
    assert hazards["valid_from"].startswith("datetime64") and hazards["closes_roads"] == "bool"


def test_gdal_paging_bbox_where_and_projected_crs(served):
    root, store = served
    shelters = store.frame("shelters")
    jobs = [
        {"layer": "shelters", "open_options": {"PAGE_SIZE": "7"}},  # 9 pages by `next` links
        {"layer": "shelters", "bbox": list(BOX)},
        {"layer": "roads", "bbox": list(BOX)},
        {"layer": "shelters", "where": "shelter_class = 'I'"},
        {"layer": "shelters", "open_options": {"CRS": "EPSG:4547"}},
    ]
    paged, sh_box, rd_box, where, projected = run_gdal(root, jobs)["reads"]
    assert paged["n"] == len(shelters) and paged["ids"] == sorted(shelters["shelter_id"])
    assert sh_box["n"] == _bbox_count(shelters, BOX) > 0
    assert rd_box["n"] == _bbox_count(store.frame("roads"), BOX) > 0
    assert where["n"] == int((shelters["shelter_class"] == "I").sum()) > 0
    # EPSG:4547 (CGCS2000 Gauss-Kruger, northing first as EPSG defines it; GDAL swaps it back
    # to easting, northing): the points projected by pyproj on the workspace frame
    t = pyproj.Transformer.from_crs(4490, 4547, always_xy=True)
    x, y = t.transform(shelters.geometry.x.to_numpy(), shelters.geometry.y.to_numpy())
    assert projected["crs"] == "EPSG:4547"
    assert np.allclose(projected["bounds"], [x.min(), y.min(), x.max(), y.max()], atol=0.002)


def _all_items(api, cid: str, **kwargs) -> list[dict]:
    """Walk a collection page by page as OWSLib does, checking numberMatched and next links."""
    feats: list[dict] = []
    offset = 0
    while True:
        page = api.collection_items(cid, limit=1000, offset=offset, **kwargs)
        feats.extend(page["features"])
        assert page["numberReturned"] == len(page["features"])
        nxt = [link for link in page["links"] if link["rel"] == "next"]
        if not nxt:
            assert len(feats) == page["numberMatched"]
            return feats
        offset += 1000
        assert f"offset={offset}" in nxt[0]["href"]


def _bounds(feats: list[dict]) -> np.ndarray:
    geoms = shapely.from_geojson([json.dumps(f["geometry"]) for f in feats])
    return shapely.total_bounds(geoms)


def test_owslib_reads_every_collection(served):
    root, store = served
    api = owslib_features.Features(root)  # Accept: */* -> the landing page as JSON
    assert any(link["rel"] == "data" for link in api.links)
    conf = api.conformance()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables" in conf
    assert api.feature_collections() == store.layer_names()
    for cid in store.layer_names():
        info = api.collection(cid)
        assert info["storageCrs"] in info["crs"] and info["storageCrs"] == EPSG4490
        g = store.frame(cid)
        feats = _all_items(api, cid)
        assert len(feats) == len(g), cid
        if len(g):
            assert np.allclose(_bounds(feats), g.total_bounds, atol=TOL), cid


def test_owslib_bbox_2d_3d_bbox_crs_and_crs(served):
    root, store = served
    api = owslib_features.Features(root)
    roads = store.frame("roads")
    want = _bbox_count(roads, BOX)
    assert len(_all_items(api, "roads", bbox=list(BOX))) == want
    lon0, lat0, lon1, lat1 = BOX
    three_d = [lon0, lat0, -100.0, lon1, lat1, 9000.0]
    assert len(_all_items(api, "roads", bbox=three_d)) == want
    lat_lon = [lat0, lon0, lat1, lon1]  # EPSG:4490 axis order
    assert len(_all_items(api, "roads", bbox=lat_lon, **{"bbox-crs": EPSG4490})) == want
    # crs=EPSG:4490: lat/lon coordinates, named in Content-Crs
    plain = api.collection_items("shelters", limit=5)
    assert api.response_headers["Content-Crs"] == f"<{CRS84}>"
    swapped = api.collection_items("shelters", limit=5, crs=EPSG4490)
    assert api.response_headers["Content-Crs"] == f"<{EPSG4490}>"
    for a, b in zip(plain["features"], swapped["features"], strict=True):
        lon, lat = a["geometry"]["coordinates"]
        assert b["geometry"]["coordinates"] == [lat, lon] and 22 < lat < 23 < 112 < lon
    one = api.collection_item("incidents", plain_id := _first_id(api, "incidents"))
    assert one["id"] == plain_id


def _first_id(api, cid: str) -> str:
    return api.collection_items(cid, limit=1)["features"][0]["id"]


def test_owslib_queryables_and_schema(served):
    root, store = served
    api = owslib_features.Features(root)
    q = api.collection_queryables("shelters")
    assert q["type"] == "object" and "shelter_class" in q["properties"]
    assert q["properties"]["geometry"]["format"] == "geometry-point"
    schema = api.collection_schema("incidents")
    roles = {k: v.get("x-ogc-role") for k, v in schema["properties"].items()}
    assert roles["incident_id"] == "id" and roles["reported_at"] == "primary-instant"
    assert roles["geometry"] == "primary-geometry"
    # every queryable is an items parameter: kind=flood
    got = api.collection_items("incidents", kind="flood")
    assert got["numberMatched"] == int((store.frame("incidents")["kind"] == "flood").sum()) == 3
