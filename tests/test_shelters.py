"""Tests of relief.shelters: capacity by hand, a hand-made walk network, the Pengjiang sample."""

from __future__ import annotations

import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest
import shapely

from geo_mz.core.results import result_catalog
from geo_mz.core.validate import check_layer
from geo_mz.datasets.pengjiang import build_pengjiang
from geo_mz.network.graph import network_from_roads
from geo_mz.outputs.shelters import shelter_map, write_shelter_outputs
from geo_mz.relief.shelter_tables import excel_tables, output_layers, report_tables
from geo_mz.relief.shelters import (
    ShelterError,
    ShelterSettings,
    evacuate,
    shelter_adequacy,
    shelter_capacity,
)

X0, Y0 = 500_000.0, 2_500_000.0  # EPSG:4547 (CGCS2000 GK CM 114E), Pearl River Delta
CRS = "EPSG:4547"
M_PER_MIN = 4.0 * 1000 / 60  # walking 4 km/h


def shelters_frame(rows: list[dict]) -> gpd.GeoDataFrame:
    base = {"name": None, "shelter_class": None, "class_gb51143": None, "capacity_persons": None}
    recs = [{**base, "name": f"场所{r['shelter_id']}", **r} for r in rows]
    geoms = [shapely.Point(X0 + r.pop("x"), Y0 + r.pop("y", 0.0)) for r in recs]
    return gpd.GeoDataFrame(recs, geometry=geoms, crs=CRS)


def population_frame(cells: list[tuple[float, float, str]]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "cell_id": [f"C{i}" for i in range(len(cells))],
            "pop_total": [float(p) for _, p, _ in cells],
            "pop_60plus": [float(p) * 0.1 for _, p, _ in cells],
            "adcode": [a for _, _, a in cells],
        },
        geometry=[shapely.Point(X0 + x, Y0) for x, _, _ in cells],
        crs=CRS,
    )


V1, V2, TOWN = "440703001001", "440703001002", "440703001"


@pytest.fixture(scope="module")
def line_net():
    """A straight street from x=0 to 5,000 m, one node every 100 m."""
    rows = [
        {
            "road_id": f"r{i}",
            "road_class": "residential",
            "geometry": shapely.LineString([(X0 + x, Y0), (X0 + x + 100, Y0)]),
        }
        for i, x in enumerate(range(0, 5000, 100))
    ]
    net = network_from_roads(gpd.GeoDataFrame(rows, crs=CRS), mode="walk")
    assert net.n_nodes == 51
    return net


@pytest.fixture(scope="module")
def hand_units() -> gpd.GeoDataFrame:
    def box(x0, x1):
        return shapely.box(X0 + x0, Y0 - 500, X0 + x1, Y0 + 500)

    return gpd.GeoDataFrame(
        {
            "adcode": [TOWN, V1, V2],
            "name": ["测试街道", "甲社区", "乙村"],
            "level": ["town", "village", "village"],
            "parent_adcode": ["440703", TOWN, TOWN],
            "in_jurisdiction": [True, True, True],
        },
        geometry=[box(-100, 5100), box(-100, 2000), box(2000, 5100)],
        crs=CRS,
    )


# -------------------------------------------------------------------------------- capacity


def test_capacity_from_area_and_stages():
    sh = shelters_frame(
        [
            {"shelter_id": "A", "x": 0, "class_gb51143": "emergency", "effective_area_m2": 2999.0},
            {
                "shelter_id": "B",
                "x": 0,
                "shelter_class": "II",
                "effective_area_m2": 900.0,
                "capacity_persons": 500,
            },
            {
                "shelter_id": "C",
                "x": 0,
                "shelter_class": "I",
                "effective_area_m2": 3000.0,
                "capacity_persons": 2500,
            },
        ]
    )
    cap = shelter_capacity(sh)
    # recorded and computed side by side; NA where the list records nothing
    assert cap["capacity_recorded_persons"].tolist() == [pd.NA, 500, 2500]
    assert cap["capacity_calc_persons"].tolist() == [1999, 600, 2000]
    assert cap["capacity_used_persons"].tolist() == [1999, 500, 2000]
    assert cap["capacity_over_standard"].tolist() == [False, False, True]
    b = cap.iloc[1]
    assert [b[f"cap_{s}_persons"] for s in ("emergency", "temporary", "short", "mid", "long")] == [
        1800, 900, 450, 300, 200,
    ]  # fmt: skip
    # III/II/I without a GB 51143 class map to emergency/fixed_short/fixed_mid (local choice)
    assert cap["class_gb51143_used"].tolist() == ["emergency", "fixed_short", "fixed_mid"]
    assert cap["service_m"].tolist() == [500.0, 1000.0, 1500.0]
    assert cap["service_min"].tolist() == pytest.approx([7.5, 15.0, 22.5])
    # the stage basis: short-term fixed at 2.0 m², medium-term at 3.0 m² per person
    staged = shelter_capacity(sh, ShelterSettings(capacity_basis="stage"))
    assert staged["capacity_calc_persons"].tolist() == [5998, 450, 1000]
    central = {"I": "central", "II": "fixed_short", "III": "emergency"}
    mapped = shelter_capacity(sh, ShelterSettings(class_from_gb21734=central))
    assert mapped["service_m"].iloc[2] == 2500.0


def test_warnings_name_the_standard():
    sh = shelters_frame(
        [
            {"shelter_id": "A", "x": 0, "shelter_class": "III", "effective_area_m2": 1999.0},
            {"shelter_id": "B", "x": 0, "shelter_class": "III", "effective_area_m2": 2000.0},
            {
                "shelter_id": "C",
                "x": 0,
                "shelter_class": "II",
                "effective_area_m2": 3000.0,
                "capacity_persons": 2500,
            },
        ]
    )
    w = shelter_capacity(sh)["warnings"].tolist()
    assert "2,000 m²" in w[0] and "GB 21734-2008 §5.4" in w[0]
    assert w[1] == ""
    assert "2,500" in w[2] and "2,000" in w[2] and "GB 21734" in w[2]


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"effective_area_m2": None, "shelter_class": "II"}, ["effective_area_m2", "row 1", "S2"]),
        ({"effective_area_m2": -5.0, "shelter_class": "II"}, ["effective_area_m2", "S2"]),
        ({"effective_area_m2": 10.0, "shelter_class": "IV"}, ["class_gb51143", "S2", "IV"]),
        ({"effective_area_m2": 10.0, "class_gb51143": "mega"}, ["class_gb51143", "mega"]),
        (
            {"effective_area_m2": 10.0, "shelter_class": "II", "capacity_persons": -1},
            ["capacity_persons", "S2"],
        ),
    ],
)
def test_bad_shelters_are_named(row, words):
    ok = {"shelter_id": "S1", "x": 0, "shelter_class": "III", "effective_area_m2": 100.0}
    sh = shelters_frame([ok, {"shelter_id": "S2", "x": 0, **row}])
    with pytest.raises(ShelterError) as exc:
        shelter_capacity(sh)
    for w in words:
        assert w in str(exc.value)


# -------------------------------------------------------------------------------- adequacy

HAND_SHELTERS = [
    # emergency, 50 m off the street at x=200: the cell at x=600 is 50 + 400 = 450 m away
    {"shelter_id": "S1", "x": 200, "y": 50, "class_gb51143": "emergency",
     "effective_area_m2": 3000.0, "capacity_persons": 1500},
    # short-term fixed at x=1000, 600 persons at 1.5 m²; 1,300 m from the cell at x=2,300
    {"shelter_id": "S2", "x": 1000, "class_gb51143": "fixed_short", "effective_area_m2": 900.0},
]  # fmt: skip
HAND_CELLS = [(600, 1000, V1), (2300, 100, V2), (3500, 2900, V2)]


def test_adequacy_by_hand(line_net, hand_units):
    res = shelter_adequacy(
        shelters_frame(HAND_SHELTERS), hand_units, population_frame(HAND_CELLS), line_net
    )
    v = res.table_villages.set_index("adcode")
    assert v.loc[V1, "has_shelter"] and not v.loc[V2, "has_shelter"]
    assert v.loc[V1, "n_shelters_inside"] == 2 and v.loc[V1, "n_shelters_reach"] == 2
    assert v.loc[V2, "n_shelters_inside"] == 0 and v.loc[V2, "n_shelters_reach"] == 0
    assert v.loc[V1, "pop_served"] == 1000 and v.loc[V2, "pop_served"] == 0
    assert v.loc[V1, "capacity_persons"] == 2100 and v.loc[V1, "fixed_capacity_share"] == 0.6
    assert v.loc[V2, "fixed_capacity_share"] == 0 and not v.loc[V2, "meets_fixed_share"]
    town = res.table_towns.iloc[0]
    assert town["population"] == 4000 and town["fixed_capacity_persons"] == 600
    assert town["fixed_capacity_share"] == pytest.approx(0.15) and town["meets_fixed_share"]
    assert town["capacity_ratio"] == pytest.approx(2100 / 4000)
    assert town["n_villages"] == 2 and town["villages_without_shelter"] == 1
    assert res.table_towns.iloc[-1]["level"] == "total"
    kpi = {k.label_en: k for k in res.kpis}
    assert kpi["Fixed-shelter capacity / population"].met is True
    assert kpi["Villages without a shelter"].value == "1/2"
    assert kpi["Population outside service distance"].value == 3000
    # an emergency shelter 400 m from V2's cell (but inside V1) serves V2 too
    more = [*HAND_SHELTERS, {"shelter_id": "S3", "x": 1900, "class_gb51143": "emergency",
                             "effective_area_m2": 2100.0}]  # fmt: skip
    res2 = shelter_adequacy(
        shelters_frame(more), hand_units, population_frame(HAND_CELLS), line_net
    )
    v2 = res2.table_villages.set_index("adcode").loc[V2]
    assert v2["has_shelter"] and v2["n_shelters_inside"] == 0 and v2["n_shelters_reach"] == 1
    assert v2["pop_served_share"] == pytest.approx(100 / 3000)


def test_network_must_match_the_walking_speed(line_net, hand_units):
    with pytest.raises(ShelterError, match=r"walk_speed_kmh=3\.2"):
        shelter_adequacy(
            shelters_frame(HAND_SHELTERS),
            hand_units,
            population_frame(HAND_CELLS),
            line_net,
            ShelterSettings(walk_speed_kmh=3.2),
        )


# ------------------------------------------------------------------------------ evacuation

EVAC_SHELTERS = [
    {"shelter_id": "S1", "x": 1000, "class_gb51143": "fixed_short", "effective_area_m2": 150.0},
    {"shelter_id": "S2", "x": 1800, "class_gb51143": "fixed_short", "effective_area_m2": 225.0},
]
# P1 100 m from S1, P2 200 m from S1 but sent 600 m to S2, P3 beyond 1,000 m of both
EVAC_CELLS = [(900, 100, V1), (1200, 200, V1), (4000, 30, V2)]


@pytest.mark.parametrize("engine", ["ortools", "networkx"])
def test_evacuation_known_optimum(line_net, hand_units, engine):
    ev = evacuate(
        population_frame(EVAC_CELLS),
        shelters_frame(EVAC_SHELTERS),
        line_net,
        engine=engine,
        units=hand_units,
    )
    assert ev.total_people == 330 and ev.assigned == 250
    # 100 x 100 m + 150 x 600 m at 66.7 m/min; sending P2 to S1 instead would cost 2,100 min
    assert ev.total_cost_min == pytest.approx((100 * 100 + 150 * 600) / M_PER_MIN)
    lines = ev.lines.sort_values("shelter_id")
    assert lines["shelter_id"].tolist() == ["S1", "S2"]
    assert lines["persons"].tolist() == [100, 150]
    assert lines["walk_min"].tolist() == pytest.approx([1.5, 9.0])
    assert lines["village_name"].tolist() == ["甲社区", "甲社区"]
    load = ev.load.set_index("shelter_id")
    assert load["assigned_persons"].tolist() == [100, 150]
    assert load["status"].tolist() == ["full", "full"]
    un = ev.unassigned.set_index("adcode")
    assert un.loc[V1, "reason"] == "shelters_full" and un.loc[V1, "persons_unassigned"] == 50
    assert un.loc[V2, "reason"] == "no_shelter_within" and un.loc[V2, "persons_unassigned"] == 30
    assert un.loc[V2, "name"] == "乙村"
    kpi = {k.label_en: k.value for k in ev.kpis}
    assert kpi["People not placed"] == 80
    assert kpi["Not placed: no shelter within service distance"] == 30
    assert kpi["Not placed: shelters within reach full"] == 50


def test_evacuation_options(line_net):
    pop, sh = population_frame(EVAC_CELLS), shelters_frame(EVAC_SHELTERS)
    old = evacuate(pop, sh, line_net, ShelterSettings(people="pop_60plus"))
    assert old.total_people == 33 and old.assigned == 30  # 10 + 20 placed, 3 beyond reach
    vil = evacuate(pop, sh, line_net, unit="villages")
    assert vil.total_people == 330 and len(vil.lines) <= 2
    with pytest.raises(ShelterError, match="unit"):
        evacuate(pop, sh, line_net, unit="households")  # type: ignore[arg-type]


# ----------------------------------------------------------------------- Pengjiang sample


@pytest.fixture(scope="module")
def sample():
    layers = build_pengjiang().layers
    net = network_from_roads(layers["roads"], mode="walk")
    adequacy = shelter_adequacy(
        layers["shelters"], layers["admin_units"], layers["population"], net
    )
    ev = evacuate(layers["population"], layers["shelters"], net, units=layers["admin_units"])
    return layers, net, adequacy, ev


def test_sample_adequacy(sample):
    layers, _, ad, _ = sample
    towns = ad.table_towns[ad.table_towns["level"] == "town"]
    assert len(towns) == 6 and towns["has_shelter"].all()
    assert towns["n_shelters_inside"].sum() == len(layers["shelters"]) == 61
    # the district's fixed share, computed independently from the layers
    sh = layers["shelters"]
    cap = np.minimum(sh["capacity_persons"], np.floor(sh["effective_area_m2"] / 1.5))
    fixed = cap[sh["class_gb51143"].isin(["fixed_short", "fixed_mid", "fixed_long", "central"])]
    people = layers["population"]["pop_total"].sum()
    total = ad.table_towns.iloc[-1]
    assert total["population"] == pytest.approx(people) == 750_000
    # 60,000 recorded, less what the over-recorded sites list beyond their area's capacity
    excess = (sh["capacity_persons"] - np.floor(sh["effective_area_m2"] / 1.5)).clip(lower=0)
    assert excess.sum() > 0
    assert total["capacity_persons"] == pytest.approx(cap.sum()) == 60_000 - excess.sum()
    assert total["fixed_capacity_share"] == pytest.approx(fixed.sum() / people)
    kpi = {k.label_en: k for k in ad.kpis}
    assert kpi["Fixed-shelter capacity / population"].value == round(100 * fixed.sum() / people, 1)
    assert kpi["Fixed-shelter capacity / population"].met is False
    assert kpi["Towns without a shelter"].value == "0/6"
    vil = ad.table_villages
    assert vil.iloc[:-1]["pop_served"].sum() == pytest.approx(total["pop_served"])


def test_sample_evacuation_respects_capacity(sample):
    _, _, _, ev = sample
    load = ev.load
    assert (load["assigned_persons"] <= load["capacity_persons"]).all()
    assert ev.total_people == 750_000
    assert ev.assigned + ev.unassigned["persons_unassigned"].sum() == ev.total_people
    assert ev.lines["persons"].sum() == ev.assigned == load["assigned_persons"].sum()
    by_shelter = ev.lines.groupby("shelter_id")["persons"].sum()
    assert (by_shelter == load.set_index("shelter_id")["assigned_persons"][by_shelter.index]).all()
    limit = load.set_index("shelter_id")["service_min"]
    assert (
        ev.lines["walk_min"].to_numpy() <= limit[ev.lines["shelter_id"]].to_numpy() + 1e-6
    ).all()
    assert set(ev.unassigned["reason"]) == {"no_shelter_within", "shelters_full"}


def test_sample_shows_recorded_beside_computed_capacity(sample):
    """The sample records some sites above GB 21734's 1.5 m²/person: the load layer, the report
    and the warnings show both figures, and the evacuation uses the smaller."""
    layers, _, ad, ev = sample
    sh = layers["shelters"].set_index("shelter_id")
    load = output_layers(evacuation=ev)["shelter_load"].set_index("shelter_id")
    calc = np.floor(sh["effective_area_m2"] / 1.5).astype(int)  # independent of the analysis
    assert (load["capacity_recorded_persons"] == sh["capacity_persons"][load.index]).all()
    assert (load["capacity_calc_persons"] == calc[load.index]).all()
    over = sh.index[sh["capacity_persons"] > calc]
    assert len(over) == 8  # this seed; indoor community sites recorded by headcount
    assert set(load.index[load["capacity_over_standard"]]) == set(over)
    used = np.minimum(sh["capacity_persons"], calc)[load.index]
    assert (load["capacity_persons"] == used).all()
    assert (load.loc[over, "assigned_persons"] <= calc[over]).all()
    assert load.loc[over, "warnings"].str.contains("GB 21734-2008 §5.4").all()
    # the report lists every over-recorded site with both figures
    tables = report_tables(ad, ev)
    table = next(t for t in tables if "recorded capacity above" in t.title_en)
    assert len(table.rows) == len(over)
    assert {r[0] for r in table.rows} == set(over)
    heads = list(table.columns)
    rec_i, calc_i = (
        heads.index("登记容量 Capacity recorded"),
        heads.index("按标准计算容量 Capacity by area (GB 21734)"),
    )
    for row in table.rows:
        sid = row[0]
        assert re.sub(r"\D", "", row[rec_i]) == str(sh.loc[sid, "capacity_persons"])
        assert re.sub(r"\D", "", row[calc_i]) == str(calc[sid])
    # the load table of the report carries both columns too
    load_table = next(t for t in tables if t.title_en == "Evacuation: shelter load")
    assert "登记容量 Capacity recorded" in load_table.columns


@pytest.mark.parametrize("unit", ["cells", "villages"])
def test_sample_engines_agree(sample, unit):
    layers, net, _, ev = sample
    runs = [
        evacuate(layers["population"], layers["shelters"], net, unit=unit, engine=e)
        for e in ("ortools", "networkx")
    ]
    # The solvers work in 0.01-minute units: the scaled optimum is the same; the unscaled totals
    # may differ by the rounding of tied pairs.
    scaled = [int((r.lines["persons"] * np.rint(r.lines["walk_min"] * 100)).sum()) for r in runs]
    assert scaled[0] == scaled[1]
    assert runs[0].assigned == runs[1].assigned
    assert runs[0].total_cost_min == pytest.approx(runs[1].total_cost_min, rel=1e-5)
    if unit == "cells":
        assert runs[0].assigned == ev.assigned


def test_sample_outputs_follow_their_specs(tmp_path: Path, sample):
    layers, _, ad, ev = sample
    outs = output_layers(ad, ev)
    specs = result_catalog()
    assert set(outs) == {"shelter_units", "shelter_load", "evacuation", "evacuation_unassigned"}
    for name, gdf in outs.items():
        _, problems = check_layer(gdf, specs[name], file=name)
        assert [p for p in problems if p.severity == "error"] == [], name
        assert gdf.crs.to_epsg() == 4490
    assert len(outs["shelter_units"]) == 6 + 139
    paths = write_shelter_outputs(tmp_path, layers, ad, ev)
    assert {str(n) for n in pyogrio.list_layers(paths["gpkg"])[:, 0]} == set(outs)
    book = openpyxl.load_workbook(paths["xlsx"], read_only=True)
    assert set(excel_tables(ad, ev)) == set(book.sheetnames)
    header = [c.value for c in next(book["镇街 towns"].iter_rows(max_row=1))]
    assert "固定避难容量/规划人口 Fixed capacity / population" in header
    html = paths["map"].read_text(encoding="utf-8")
    assert "避难场所疏散负荷" in html and "未安置人口" in html
    # shelters are sized by capacity: the largest gets the largest radius
    assert '"radius": 14.0' in html  # shelter_load.toml: max_radius = 14
    tables = report_tables(ad, ev)
    assert tables[0].rows[-1][0] == "合计 total" and len(tables[0].rows) == 7
    assert tables[0].columns[0].startswith("名称")


def test_sample_map_without_evacuation(sample):
    layers, _, ad, _ = sample
    m = shelter_map(layers, ad, lang="en")
    html = m.get_root().render()
    assert "Emergency shelters (61)" in html and "Emergency shelter provision" in html
    assert isinstance(excel_tables(ad)["指标 KPIs"], pd.DataFrame)
