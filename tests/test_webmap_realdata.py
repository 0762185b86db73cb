"""The web map on a workspace built as a bureau builds one (``geo-mz init`` + ``import``).

Such a workspace has the bureau's layers and no ``incidents`` layer (only the demo adds an empty
one), and the page is read in English as well as Chinese. Found on central 龙岗 (real OSM roads,
real shelters): the reporter's form was offered but every report got 404 ``no_collection``
(with a raw English note on the map); the English panel showed Chinese units (人, 处, 张, 个,
"全部 all"); a refused edit without a login was explained in English only.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("flask")

from geo_mz.core import Workspace
from webmap import Settings, create_app
from webmap.core.analysis_json import kpi_target, kpi_unit
from webmap.core.gpkg import INCIDENTS_ADDED
from webmap.testing import INSIDE, PASSWORD, SECRET, running_server

HAN = re.compile("[\u3400-\u9fff]")


def bureau_workspace(base: Path, target: Path) -> Path:
    """Copy the sample's layers, all but ``incidents``, into a new workspace (as init+import)."""
    src = Workspace(base / "pengjiang.gpkg")
    meta = src.metadata
    target.mkdir(parents=True, exist_ok=True)
    path = target / "bureau.gpkg"
    ws = Workspace.create(
        path,
        name=meta["name"],
        adcode=meta["adcode"],
        bounds=tuple(meta["bounds"]),
        measure_crs=meta["measure_crs"],
    )
    names = [n for n in src.layers() if n != "incidents"]
    prov = {"synthetic": True, "source": "copied from the sample", "method": "import"}
    ws.write_layers({n: src.read(n) for n in names}, {n: prov for n in names})
    (target / "bureau.users.sqlite").write_bytes((base / "pengjiang.users.sqlite").read_bytes())
    return path


def basic(name: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{PASSWORD}".encode()).decode()
    return {"Authorization": "Basic " + token}


def report(client, user: str = "reporter1"):
    body = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": list(INSIDE)},
        "properties": {"kind": "flood", "description": "桥下积水", "people_affected": 3},
    }
    return client.post(
        "/collections/incidents/items",
        data=json.dumps(body),
        headers={"Content-Type": "application/json", **basic(user)},
    )


def test_a_workspace_without_incidents_takes_reports(base, tmp_path):
    path = bureau_workspace(base, tmp_path / "ws")
    assert "incidents" not in Workspace(path).layers()
    app = create_app(Settings(workspace=path, secret_key=SECRET))
    assert app.extensions["webmap"].added_incidents  # what `geo-mz serve` tells the user
    client = app.test_client()
    ids = [c["id"] for c in client.get("/collections").get_json()["collections"]]
    assert "incidents" in ids
    assert client.get("/map/incidents?lang=zh").status_code == 200
    r = report(client)
    assert r.status_code == 201, r.get_data(as_text=True)
    ws = Workspace(path)
    assert ws.count("incidents") == 1
    rec = ws.layer_records().set_index("layer").loc["incidents"]
    assert rec["source"] == INCIDENTS_ADDED["source"]
    # a second server on the same file keeps the reports (the layer is not added again)
    app2 = create_app(Settings(workspace=path, secret_key=SECRET))
    assert not app2.extensions["webmap"].added_incidents
    again = app2.test_client()
    feats = again.get("/collections/incidents/items").get_json()["features"]
    assert [f["properties"]["description"] for f in feats] == ["桥下积水"]
    # the layer is stored as the catalog spec says: GIS staff read it like any other
    assert report(again).status_code == 201
    assert Workspace(path).count("incidents") == 2


def test_a_postgis_import_without_incidents_takes_reports(pg_url, base, tmp_path):
    from webmap.core.postgis import import_workspace

    path = bureau_workspace(base, tmp_path / "ws")
    import_workspace(pg_url, path, replace=True)
    settings = Settings(
        workspace=None,
        database_url=pg_url,
        users_db=tmp_path / "ws" / "bureau.users.sqlite",
        secret_key=SECRET,
    )
    app = create_app(settings)
    try:
        client = app.test_client()
        ids = [c["id"] for c in client.get("/collections").get_json()["collections"]]
        assert "incidents" in ids
        r = report(client)
        assert r.status_code == 201, r.get_data(as_text=True)
        assert client.get("/map/incidents?lang=zh").get_json()["incidents"][0]["kind"] == "flood"
    finally:
        app.extensions["webmap"].close()


def test_the_english_panel_has_no_chinese_units(base, tmp_path):
    path = bureau_workspace(base, tmp_path / "ws")
    client = create_app(Settings(workspace=path, secret_key=SECRET)).test_client()
    en = client.get("/map/summary?lang=en").get_json()["kpis"]
    zh = client.get("/map/summary?lang=zh").get_json()["kpis"]
    assert en and len(en) == len(zh)
    for k in en:
        assert not HAN.search(k["unit"] + k["target"] + k["label"]), k
    units = {k["unit"] for k in zh}
    assert {"人", "处"} <= units  # Chinese stays Chinese
    assert "全部" in {k["target"] for k in zh}
    assert "all" in {k["target"] for k in en}


@pytest.mark.parametrize(
    ("target", "unit", "lang", "shown"),
    [
        ("≥ 100.0", "%", None, "≥ 100%"),  # the 15-minute circle's share, as the panel shows it
        ("≥ 95", "%", "en", "≥ 95%"),
        ("≥ 55%", "%", "en", "≥ 55%"),
        ("全部 all", "", "en", "all"),
        ("全部 all", "", "zh", "全部"),
        ("≥ 1", "个", "en", "≥ 1"),
        ("14/14", "", None, "14/14"),
    ],
)
def test_kpi_targets_as_shown(target, unit, lang, shown):
    assert kpi_target(target, unit, lang) == shown


def test_kpi_units_in_english():
    assert [kpi_unit(u, "en") for u in ("人", "处", "张", "m²/人", "%")] == [
        "people",
        "sites",
        "beds",
        "m²/person",
        "%",
    ]
    assert kpi_unit("张", "zh") == "张"


def test_edits_refused_in_both_languages(base, tmp_path):
    path = bureau_workspace(base, tmp_path / "ws")
    client = create_app(Settings(workspace=path, secret_key=SECRET)).test_client()
    fid = client.get("/collections/shelters/items?limit=1").get_json()["features"][0]["id"]
    body = json.dumps({"properties": {"occupancy_persons": 5}})
    hdr = {"Content-Type": "application/json", "If-Match": "*"}
    anon = client.patch(f"/collections/shelters/items/{fid}", data=body, headers=hdr)
    assert anon.status_code == 401
    text = anon.get_json()["description"]
    assert "指挥员" in text and "log in as commander" in text
    viewer = client.patch(
        f"/collections/shelters/items/{fid}", data=body, headers={**hdr, **basic("viewer1")}
    )
    assert viewer.status_code == 403
    assert viewer.get_json()["description"].startswith("查看员无权")
    assert report(client, "viewer1").status_code == 403


@pytest.mark.slow
def test_the_phone_page_in_english_loads_clean(base, tmp_path):
    """The English page on a phone: no console error, no red note, no Chinese unit."""
    pytest.importorskip("waitress")
    from tests.browser import chromium, context_page, require_browser

    require_browser()
    path = bureau_workspace(base, tmp_path / "ws")
    app = create_app(Settings(workspace=path, secret_key=SECRET))
    phone = {"width": 390, "height": 844}
    console: list[str] = []
    with running_server(app) as url:
        for browser in chromium():
            context, page = context_page(browser, viewport=phone, is_mobile=True, has_touch=True)
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.goto(url + "/?lang=en")
            page.wait_for_function("() => window.geoMzMap && window.geoMzMap.state.config")
            page.wait_for_function("() => document.querySelectorAll('#kpi-list dd').length > 0")
            page.wait_for_function(
                "() => window.geoMzMap.incidents && window.geoMzMap.incidents.data !== null"
            )
            kpis = page.locator("#kpi-list").inner_text()
            notes = [n.inner_text() for n in page.locator(".map-note").all()]
            context.close()
    assert not HAN.search(kpis), kpis
    assert notes == []
    assert console == [] and page.js_errors == []  # type: ignore[attr-defined]
