"""Tests of outputs.maps (folium map of layers) and geo_mz.outputs.report (the HTML report)."""

from __future__ import annotations

import html as html_mod
import json
import re

import folium
import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import LineString, Point, Polygon

from geo_mz.core.catalog import default_catalog_dir, load_catalog, load_spec
from geo_mz.core.errors import CrsError, Problem
from geo_mz.core.results import Kpi, LayerCheck
from geo_mz.outputs.maps import html_text, layers_map, save_map
from geo_mz.outputs.report import MAX_PROBLEMS_SHOWN, write_report

# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def elder_care() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "facility_id": ["EC001", "EC002"],
            "name": ["白沙<b>养老院</b>", "潮连助餐点"],
            "kind": ["nursing_home", "meal_point"],
            "status": ["operating", "planned"],
            "beds": [120, None],
        },
        geometry=[Point(113.08, 22.60), Point(113.10, 22.62)],
        crs="EPSG:4490",
    )


@pytest.fixture
def roads() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "road_id": ["R1", "R2"],
            "name": ["建设路", "乡道"],
            "road_class": ["primary", "rural"],
            "speed_kmh": [50.0, 30.0],
            "oneway": [True, False],
        },
        geometry=[
            LineString([(113.07, 22.59), (113.11, 22.63)]),
            LineString([(113.11, 22.63), (113.12, 22.65)]),
        ],
        crs="EPSG:4490",
    )


@pytest.fixture
def admin_units() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "adcode": ["440703001", "440703002"],
            "name": ["白沙街道", "潮连街道"],
            "level": ["town", "town"],
            "parent_adcode": ["440703", "440703"],
        },
        geometry=[
            Polygon([(113.05, 22.57), (113.10, 22.57), (113.10, 22.62), (113.05, 22.62)]),
            Polygon([(113.10, 22.57), (113.15, 22.57), (113.15, 22.66), (113.10, 22.66)]),
        ],
        crs="EPSG:4490",
    )


def _population(n: int) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(42)
    return gpd.GeoDataFrame(
        {
            "cell_id": [f"C{i:05d}" for i in range(n)],
            "pop_total": rng.uniform(50, 500, n),
            "pop_60plus": rng.uniform(0, 50, n),
        },
        geometry=gpd.points_from_xy(rng.uniform(113.0, 113.2, n), rng.uniform(22.5, 22.7, n)),
        crs="EPSG:4490",
    )


def _html(m: folium.Map) -> str:
    return m.get_root().render()


def _has(html: str, text: str) -> bool:
    """Text present literally (legend, our HTML) or JSON-escaped (folium's embedded data)."""
    return text in html or json.dumps(text)[1:-1] in html


def _geojsons(m: folium.Map) -> dict[str, folium.GeoJson]:
    """Layer (FeatureGroup) name -> its GeoJson child."""
    out = {}
    for child in m._children.values():
        if isinstance(child, folium.FeatureGroup):
            found = [c for c in child._children.values() if isinstance(c, folium.GeoJson)]
            if found:  # the place labels and density rasters are groups without GeoJson
                (out[child.layer_name],) = found
    return out


# --------------------------------------------------------------------------- maps


def test_map_shows_titles_and_labels_not_codes(elder_care, roads, admin_units):
    m = layers_map({"elder_care": elder_care, "roads": roads, "admin_units": admin_units})
    html = _html(m)
    for title in ("养老服务设施", "道路", "行政区划"):
        assert _has(html, title)
    assert "养老院" in html  # legend (literal)
    groups = _geojsons(m)
    assert set(groups) == {"养老服务设施 (2)", "道路 (2)", "行政区划 (2)"}
    props = [f["properties"] for f in groups["养老服务设施 (2)"].data["features"]]
    assert [p["kind"] for p in props] == ["养老院", "助餐点"]
    assert props[0]["status"] == "运营中"
    assert props[0]["beds"] == "120 张"  # unit appended
    assert props[1]["beds"] == ""  # missing value is blank, not "nan"
    # the codes themselves are nowhere on the map
    for code in ("nursing_home", "meal_point", "operating", "primary", "town"):
        assert code not in html
    # field titles are the popup aliases
    assert _has(html, "设施类型") and _has(html, "床位数")
    road_props = groups["道路 (2)"].data["features"][0]["properties"]
    assert road_props["road_class"] == "主干路"
    assert road_props["speed_kmh"] == "50 km/h"
    assert road_props["oneway"] == "是"


def test_map_escapes_markup_in_popups(elder_care):
    m = layers_map({"elder_care": elder_care})
    (gj,) = _geojsons(m).values()
    name = gj.data["features"][0]["properties"]["name"]
    assert name == "白沙&lt;b&gt;养老院&lt;/b&gt;"


def test_map_data_is_never_read_as_a_template(tmp_path, elder_care, admin_units):
    """Branca compiles a map's scripts as Jinja again: a name must not be evaluated there."""
    ec = elder_care.copy()
    ec["name"] = ["{{ 7*7 }}号", "{% if true %}z{% endif %}院"]
    units = admin_units.copy()
    units["name"] = ["{{ 6*7 }}镇", "{#注#}村"]
    save_map(layers_map({"elder_care": ec, "admin_units": units}), tmp_path / "m.html")
    page = (tmp_path / "m.html").read_text(encoding="utf-8")
    assert "49号" not in page and "42镇" not in page and ">z院" not in page
    # The names reach the page as text the browser shows as given (braces as references).
    props = [f["properties"]["name"] for f in _geojsons(layers_map({"elder_care": ec}))[
        "养老服务设施 (2)"].data["features"]]  # fmt: skip
    assert [html_mod.unescape(n) for n in props] == list(ec["name"])
    assert html_mod.unescape(html_text("{{ a }}<b>")) == "{{ a }}<b>"
    assert "{" not in html_text("{{ a }}") and "}" not in html_text("{% b %}")


def test_map_legend_lists_category_colours(elder_care, roads):
    html = _html(layers_map({"elder_care": elder_care, "roads": roads}))
    legend = html[html.index('class="gm-legend"') :]
    assert "图例 Legend" in legend
    assert "#3f007d" in legend and "养老院" in legend  # nursing_home colour and label
    assert "#fd8d3c" in legend and "主干路" in legend
    assert "敬老院" not in legend  # only categories present in the data


def test_map_styles_use_catalog_colours(elder_care):
    m = layers_map({"elder_care": elder_care})
    html = _html(m)
    assert '"fillColor": "#3f007d"' in html and '"fillColor": "#fdae6b"' in html
    assert "circleMarker" in html or "L.CircleMarker" in html


def test_map_layers_in_z_order(elder_care, roads, admin_units):
    m = layers_map({"elder_care": elder_care, "roads": roads, "admin_units": admin_units})
    assert list(_geojsons(m)) == ["行政区划 (2)", "道路 (2)", "养老服务设施 (2)"]  # z 10, 20, 60


def test_map_without_crs_raises_naming_layer(elder_care, roads):
    bad = elder_care.set_crs(None, allow_override=True)
    with pytest.raises(CrsError, match="elder_care"):
        layers_map({"roads": roads, "elder_care": bad})


def test_map_reprojects_to_wgs84(elder_care):
    m = layers_map({"elder_care": elder_care.to_crs("EPSG:3857")})
    (gj,) = _geojsons(m).values()
    lon, lat = gj.data["features"][0]["geometry"]["coordinates"]
    assert lon == pytest.approx(113.08, abs=1e-6) and lat == pytest.approx(22.60, abs=1e-6)


def test_map_thins_large_layers_and_says_so():
    pop = _population(50)
    m = layers_map({"population": pop}, max_features=10)
    html = _html(m)
    ((name, gj),) = _geojsons(m).items()
    assert name == "人口 (显示 10/50)"
    assert len(gj.data["features"]) == 10
    assert "显示 10/50" in html  # legend says it too
    again = _geojsons(layers_map({"population": pop}, max_features=10))[name]
    ids = [f["properties"]["cell_id"] for f in gj.data["features"]]
    assert ids == [f["properties"]["cell_id"] for f in again.data["features"]]  # deterministic
    assert ids[0] == "C00000" and ids[-1] == "C00049"  # spread over the whole layer


def test_map_graduated_ramp_by_quantiles():
    html = _html(layers_map({"population": _population(100)}))
    legend = html[html.index('class="gm-legend"') :]
    assert legend.count("60岁及以上人口:") == 5  # quintile classes
    assert "#8c2d04" in legend  # the ramp ends in the spec colour


def test_map_graduated_fixed_breaks_from_the_spec(tmp_path):
    cat = {k: v for k, v in load_catalog().items()}
    spec_file = tmp_path / "population.toml"
    text = (default_catalog_dir() / "population.toml").read_text(encoding="utf-8")
    spec_file.write_text(
        text.replace(
            'style = "graduated"',
            'style = "graduated"\nbreaks = [10.0, 20.0]\n'
            'colors = ["#111111", "#222222", "#333333"]',
        ),
        encoding="utf-8",
    )
    cat["population"] = load_spec(spec_file)
    html = _html(layers_map({"population": _population(100)}, catalog=cat))
    legend = html[html.index('class="gm-legend"') :]
    assert legend.count("60岁及以上人口:") == 3
    for colour in ("#111111", "#222222", "#333333"):
        assert colour in legend


def test_map_lang_en(elder_care, roads):
    m = layers_map({"elder_care": elder_care, "roads": roads}, lang="en")
    html = _html(m)
    assert "Legend" in html and "Nursing home" in html
    groups = _geojsons(m)
    assert "Elder-care facilities (2)" in groups
    props = groups["Elder-care facilities (2)"].data["features"][0]["properties"]
    assert props["kind"] == "Nursing home" and props["beds"] == "120 beds"
    for zh in ("养老服务设施", "设施类型", "运营中", "主干路"):
        assert not _has(html, zh)


def test_map_offline_by_default_and_optional_tiles(elder_care):
    m = layers_map({"elder_care": elder_care})
    assert not any(isinstance(c, folium.TileLayer) for c in m._children.values())
    assert "tile.openstreetmap" not in _html(m)
    url = "https://t0.tianditu.gov.cn/vec_w/wmts?tk=KEY&x={x}&y={y}&l={z}"
    m2 = layers_map({"elder_care": elder_care}, tiles=url, tiles_attribution="© 天地图")
    assert any(isinstance(c, folium.TileLayer) for c in m2._children.values())
    assert "t0.tianditu.gov.cn" in _html(m2)
    with pytest.raises(ValueError, match="tiles_attribution"):
        layers_map({"elder_care": elder_care}, tiles=url)


def test_map_skips_empty_layers_and_fits_bounds(elder_care, roads):
    empty = roads.iloc[0:0]
    m = layers_map({"elder_care": elder_care, "roads": empty})
    assert list(_geojsons(m)) == ["养老服务设施 (2)"]
    html = _html(m)
    assert re.search(r"fitBounds\(\s*\[\[22\.6, 113\.08\], \[22\.62, 113\.1\]\]", html)
    assert "control.scale" in html.lower() or "L.control.scale" in html


def test_map_bad_arguments(elder_care):
    with pytest.raises(ValueError, match="lang"):
        layers_map({"elder_care": elder_care}, lang="fr")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_features"):
        layers_map({"elder_care": elder_care}, max_features=0)
    with pytest.raises(TypeError, match="elder_care"):
        layers_map({"elder_care": elder_care.drop(columns="geometry")})


def test_save_map(tmp_path, elder_care):
    path = save_map(layers_map({"elder_care": elder_care}), tmp_path / "out" / "map.html")
    assert path.is_file()
    page = path.read_text(encoding="utf-8")
    assert "图例 Legend" in page
    # self-contained: Leaflet inlined, no script or stylesheet from the network
    assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', page)
    assert "L.map(" in page and "leaflet-control-layers" in page


# --------------------------------------------------------------------------- report

INFO = {
    "path": "/x/pengjiang.gpkg",
    "name": "江门市蓬江区",
    "adcode": "440703",
    "storage_crs": "EPSG:4490",
    "measure_crs": "EPSG:4547",
    "created_at": "2026-11-23T21:00:00+00:00",
    "geo_mz_version": "0.1.0",
    "layers": [
        {
            "layer": "elder_care",
            "title_zh": "养老服务设施",
            "title_en": "Elder-care facilities",
            "geometry": "Point",
            "rows": 120,
            "synthetic": True,
            "source": "seeded generator",
            "method": "random points inside town polygons",
            "imported_at": "2026-11-23T21:01:00+00:00",
            "sha256": "0123456789abcdef" * 4,
        },
        {
            "layer": "admin_units",
            "title_zh": "行政区划",
            "title_en": "Administrative units",
            "geometry": "Polygon",
            "rows": 7,
            "synthetic": False,
            "source": "Tianditu",
            "method": "",
            "imported_at": "2026-11-23T21:00:30+00:00",
            "sha256": "",
        },
    ],
}

KPIS = [
    Kpi("护理型床位占比", "Share of nursing-type beds", 38.5, "%", "≥ 40", False, "江门市养老规划"),
    Kpi("每千名老年人床位", "Beds per 1,000 elderly", 41.8, "张", "≥ 39", True, "广东省规划"),
    Kpi("60岁及以上人口", "Population aged 60+", 123456, "人"),
]


def _checks() -> list[LayerCheck]:
    return [
        LayerCheck(
            "elder_care",
            "elder_care.csv",
            120,
            [
                Problem("elder_care.csv", 17, "EC018", "beds", "below_min", "beds -3 < 0"),
                Problem(
                    "elder_care.csv",
                    22,
                    "EC023",
                    "name",
                    "suspicious",
                    "name is <script>alert('x')</script>",
                    "warning",
                ),
                Problem(
                    "elder_care.csv",
                    30,
                    "EC031",
                    "kind",
                    "label",
                    "养老院 → nursing_home",
                    "notice",
                ),
            ],
        ),
        LayerCheck("admin_units", "towns.geojson", 7, ()),
    ]


def test_layer_check_counts():
    check = _checks()[0]
    assert isinstance(check.problems, tuple)
    assert (check.errors, check.warnings, check.notices) == (1, 1, 1)
    assert not check.ok and _checks()[1].ok


def test_report_contents(tmp_path):
    path = write_report(
        tmp_path / "r" / "report.html",
        info=INFO,
        validation=_checks(),
        kpis=KPIS,
        map_href="map.html",
    )
    html = path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and '<html lang="zh-CN">' in html
    assert '<meta charset="utf-8">' in html
    # workspace header
    for text in ("江门市蓬江区", "440703", "EPSG:4490", "EPSG:4547", "0.1.0"):
        assert text in html
    # KPIs: values, units, met / unmet
    assert "38.5 %" in html and "41.8 张" in html and "123,456 人" in html
    assert re.search(r'class="unmet"[^>]*>✗', html)
    assert re.search(r'class="met"[^>]*>✓', html)
    assert "江门市养老规划" in html
    # inventory: bilingual heading, synthetic vs real badges, method collapsed
    assert "图层清单" in html and "Layer inventory" in html
    assert html.index("图层清单") < html.index("Layer inventory")
    assert "合成 synthetic" in html and "真实 real" in html
    assert "<summary>生成/处理方法" in html
    # validation: counts and problem list with file, row, field
    assert "elder_care.csv" in html and ">17<" in html and ">beds<" in html
    assert "below_min" in html and "EC018" in html
    # escaping: the message's markup shows as text
    assert "<script>" not in html and "&lt;script&gt;" in html
    # map link and frame
    assert 'href="map.html"' in html and '<iframe class="map" src="map.html"' in html


def test_report_is_self_contained(tmp_path):
    html = write_report(tmp_path / "r.html", info=INFO, validation=_checks()).read_text("utf-8")
    assert "<link" not in html and "<script" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<iframe" not in html  # no map_href, no frame


def test_report_truncates_long_problem_lists(tmp_path):
    n = MAX_PROBLEMS_SHOWN + 50
    problems = [
        Problem("big.gpkg", i, f"F{i}", "pop_total", "below_min", f"value {i} < 0")
        for i in range(n)
    ]
    html = write_report(
        tmp_path / "r.html",
        info=INFO,
        validation=[LayerCheck("population", "big.gpkg", n, problems)],
    ).read_text("utf-8")
    problems_section = html[html.index('id="problems"') :]
    assert problems_section.count("<td><code>big.gpkg</code></td>") == MAX_PROBLEMS_SHOWN
    assert "另有 50 条未列出" in html and "50 more not listed" in html
    assert '<details class="problems">' in html  # long list starts collapsed
    assert "人口" in html  # title from the catalog for a layer not in info


def test_report_lang_en(tmp_path):
    html = write_report(
        tmp_path / "r.html", info=INFO, validation=_checks(), kpis=KPIS, lang="en"
    ).read_text("utf-8")
    assert '<html lang="en">' in html
    assert html.index("Layer inventory") < html.index("图层清单")
    assert "Share of nursing-type beds" in html
    assert html.index("Share of nursing-type beds") < html.index("护理型床位占比")


def test_report_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="lang"):
        write_report(tmp_path / "r.html", info=INFO, validation=[], lang="de")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="map_href"):
        write_report(tmp_path / "r.html", info=INFO, validation=[], map_href="javascript:alert(1)")


def test_report_tolerates_sparse_info(tmp_path):
    html = write_report(tmp_path / "r.html", info={"name": "测试"}, validation=[]).read_text(
        "utf-8"
    )
    assert "测试 工作空间报告" in html and "—" in html


def test_map_layer_without_spec_is_drawn_plainly():
    gdf = gpd.GeoDataFrame(
        {"minutes": [15]},
        geometry=[Polygon([(113, 22.5), (113.1, 22.5), (113.1, 22.6)])],
        crs="EPSG:4490",
    )
    m = layers_map({"isochrones": gdf})
    ((name, gj),) = _geojsons(m).items()
    assert name == "isochrones (1)"
    assert gj.data["features"][0]["properties"] == {"minutes": "15"}


def test_map_many_points_in_one_feature_collection():
    m = layers_map({"population": _population(12_000)})
    (group,) = [c for c in m._children.values() if isinstance(c, folium.FeatureGroup)]
    assert len(group._children) == 1  # one GeoJson, not 12,000 markers
    (gj,) = group._children.values()
    assert len(gj.data["features"]) == 12_000


# --------------------------------------------------------------------------- cartography


def _groups(m: folium.Map) -> dict[str, folium.FeatureGroup]:
    return {c.layer_name: c for c in m._children.values() if isinstance(c, folium.FeatureGroup)}


def _pane_z(m: folium.Map) -> dict[str, int]:
    return {c.name: c.z_index for c in m._children.values() if isinstance(c, folium.map.CustomPane)}


def test_map_show_switches_only_the_named_layers_on(elder_care, roads, admin_units):
    layers = {"elder_care": elder_care, "roads": roads, "admin_units": admin_units}
    m = layers_map(layers, show={"admin_units", "elder_care"})
    shown = {name: g.show for name, g in _groups(m).items()}
    assert shown == {
        "行政区划 (2)": True,
        "地名标注": True,  # the labels follow their boundaries
        "道路 (2)": False,
        "养老服务设施 (2)": True,
    }
    # by default (notebooks) every layer is on
    assert all(g.show for g in _groups(layers_map(layers)).values())


def test_map_z_override_puts_a_layer_above_another(elder_care, roads, admin_units):
    layers = {"roads": roads, "admin_units": admin_units}
    gj = _geojsons(layers_map(layers))
    panes = _pane_z(layers_map(layers))
    z_default = {n: panes[g.options["pane"]] for n, g in gj.items()}
    assert z_default["行政区划 (2)"] < z_default["道路 (2)"]
    m = layers_map(layers, z={"admin_units": 30})
    panes = _pane_z(m)
    z = {n: panes[g.options["pane"]] for n, g in _geojsons(m).items()}
    assert z["行政区划 (2)"] > z["道路 (2)"]


def test_map_population_as_a_density_raster():
    pop = _population(2000)
    m = layers_map({"population": pop}, rasters=("population",))
    assert _geojsons(m) == {}  # no marker at all
    (group,) = _groups(m).values()
    (overlay,) = [
        c for c in group._children.values() if isinstance(c, folium.raster_layers.ImageOverlay)
    ]
    assert overlay.url.startswith("data:image/png;base64,")
    html = _html(m)
    assert "/km²" not in html  # no cell_size_m column: mean per point, not a density
    with pytest.raises(ValueError, match="rasters"):
        layers_map({"population": pop}, rasters=("elder_care",))


def test_density_grid_means_per_cell_cross_checked():
    from geo_mz.outputs._cartography import density_grid

    # 4 points in one 1 km Web Mercator cell, 1 point in another: means 2.5 and 10
    xs = [0.0, 100.0, 200.0, 300.0, 5000.0]
    ys = [0.0, 100.0, 200.0, 300.0, 5000.0]
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xs, ys), crs="EPSG:3857")
    grid, (south, west, north, east) = density_grid(pts, np.array([1, 2, 3, 4, 10.0]), 1000.0)
    values = grid[np.isfinite(grid)]
    assert sorted(values.tolist()) == [2.5, 10.0]
    assert np.isnan(grid).sum() == grid.size - 2
    assert south < 0 < north and west < 0 < east  # bounds in degrees around the points


def test_map_labels_towns_escaped(admin_units):
    units = admin_units.copy()
    units.loc[0, "name"] = "白沙<b>街道</b>"
    html = _html(layers_map({"admin_units": units}))
    assert "\\u0026lt;b\\u0026gt;" in html  # escaped for HTML, then for the script
    assert "白沙<b>街道</b>" not in html
    assert not _html(layers_map({"admin_units": units}, labels=False)).count("gm_labels")


def test_map_legend_blocks_follow_their_groups(elder_care, roads):
    m = layers_map({"elder_care": elder_care, "roads": roads}, show={"roads"})
    html = _html(m)
    for g in _groups(m).values():
        assert f'data-gm-group="{g.get_name()}"' in html
    assert 'map.on("overlayadd overlayremove", sync)' in html


def test_save_map_writes_compact_utf8_json(tmp_path, elder_care):
    m = layers_map({"elder_care": elder_care})
    path = save_map(m, tmp_path / "m.html")
    page = path.read_text(encoding="utf-8")
    assert "潮连助餐点" in page  # Chinese as UTF-8, not \\u escapes
    assert '"features":[' in page and '"features": [' not in page
    assert "<b>" not in page.split("养老院")[0][-20:]  # the escaped markup stays escaped
    # the setting is restored: rendering outside save_map is folium's default again
    assert '"features": [' in _html(m)


def test_place_labels_leave_villages_out_beyond_the_limit(monkeypatch):
    from geo_mz.outputs import _cartography as carto

    cells = [Polygon([(i, 0), (i + 1, 0), (i + 1, 1), (i, 1)]) for i in range(6)]
    units = gpd.GeoDataFrame(
        {"name": [f"U{i}" for i in range(6)], "level": ["town"] * 2 + ["village"] * 4},
        geometry=cells,
        crs="EPSG:4326",
    )
    assert len(carto.place_labels(units)) == 6
    monkeypatch.setattr(carto, "MAX_LABELS", 3)
    assert [x[3] for x in carto.place_labels(units)] == ["t", "t"]
    monkeypatch.setattr(carto, "MAX_LABELS", 1)
    assert carto.place_labels(units) == []


def test_symbols_sized_by_a_field_keep_the_base_radius_when_all_values_are_equal():
    from geo_mz.core.catalog import get_spec
    from geo_mz.outputs.map_styles import size_by_field

    spec = get_spec("shelters")
    r0, r1 = float(spec.symbology["radius"]), float(spec.symbology["max_radius"])
    pts = [Point(114.2 + i / 100, 22.7) for i in range(4)]
    same = gpd.GeoDataFrame({"capacity_persons": [1000, 1000, 1000, None]}, geometry=pts)
    styles = [{} for _ in pts]
    size_by_field(styles, same, spec)  # a list whose capacity came from one default
    assert [s["radius"] for s in styles] == [r0] * 4
    varied = gpd.GeoDataFrame({"capacity_persons": [1000, 250, 0, None]}, geometry=pts)
    size_by_field(styles, varied, spec)  # area in proportion to the value, the largest at r1
    assert [s["radius"] for s in styles] == pytest.approx([r1, r0 + (r1 - r0) * 0.5, r0, r0])
