"""Every command-line option has an effect, shown here (issue 18).

``--target`` replaces one level and keeps the rest, ``--only-targets`` replaces the list, a store
level without a target is a visible warning, ``relief plan --match own`` changes which store
sends the kits, options that cannot take effect in a call stop it with exit 2, and a missing
optional package names the extra to install instead of a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import geopandas as gpd
import pytest
from click.testing import CliRunner

from geo_mz.cli import main
from geo_mz.core.errors import UnitsError
from geo_mz.core.units import units_of_level
from geo_mz.core.workspace import Workspace
from geo_mz.demo import sample_workspace

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    w, _, _ = sample_workspace(tmp_path_factory.mktemp("ws") / "pengjiang.gpkg")
    return w.path


def _audit(folder: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(folder / "relief.gpkg", layer="relief_audit")


def _stops(folder: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(folder / "plan.gpkg", layer="delivery_stops")


# --------------------------------------------------------------------------- targets


def test_target_replaces_its_level_and_keeps_the_others(ws: Path, tmp_path: Path):
    base = invoke("relief", "audit", "--workspace", str(ws), "--out", str(tmp_path / "a"))
    one = invoke(
        "relief", "audit", "--workspace", str(ws), "--out", str(tmp_path / "b"),
        "--target", "township=2",
    )  # fmt: skip
    assert base.exit_code == 0 and one.exit_code == 0, one.output
    a, b = _audit(tmp_path / "a"), _audit(tmp_path / "b")
    assert set(a["target"]) == {"county_5h", "township_3h"}
    # the county 5 h check of the workspace's plan stays; only the town target changes
    assert set(b["target"]) == {"county_5h", "township_2h"}
    county_a = a[a["target"] == "county_5h"].set_index("point_id")["time_min"]
    county_b = b[b["target"] == "county_5h"].set_index("point_id")["time_min"]
    assert county_a.equals(county_b)
    assert "township 2 h (命令行 command line)" in one.stderr
    assert "county 5 h (工作空间 workspace)" in one.stderr


def test_only_targets_replaces_the_list_and_warns_about_untargeted_stores(ws: Path, tmp_path: Path):
    res = invoke(
        "relief", "audit", "--workspace", str(ws), "--out", str(tmp_path),
        "--target", "township=2", "--only-targets",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert set(_audit(tmp_path)["target"]) == {"township_2h"}
    assert "county stores have no delivery target and are not audited" in res.stderr
    assert "--target county=HOURS" in res.stderr


def test_target_of_a_level_without_stores_is_a_warning(ws: Path, tmp_path: Path):
    res = invoke(
        "relief", "audit", "--workspace", str(ws), "--out", str(tmp_path), "--target", "city=8"
    )
    assert res.exit_code == 0, res.output
    assert "no relief store has level city" in res.stderr
    assert set(_audit(tmp_path)["target"]) == {"county_5h", "township_3h"}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--target", "town=3"], "LEVEL one of central, province, city, county, township"),
        (["--target", "township=-1"], "HOURS > 0"),
        (["--target", "township"], "write LEVEL=HOURS"),
        (["--target", "county=5", "--target", "county=6"], "given twice"),
        (["--only-targets"], "--only-targets needs at least one --target"),
    ],
)
def test_bad_targets_stop_with_a_bilingual_message(ws: Path, tmp_path: Path, args, says):
    res = invoke("relief", "audit", "--workspace", str(ws), "--out", str(tmp_path), *args)
    assert res.exit_code == 2
    assert says in res.output and ("请" in res.output or "需要" in res.output)
    assert not (tmp_path / "relief.gpkg").exists()


def test_plan_keeps_the_county_target_and_warns_when_a_level_falls_back(ws: Path, tmp_path: Path):
    common = ["relief", "plan", "--workspace", str(ws), "--towns", "440703005",
              "--time-limit", "0.2"]  # fmt: skip
    merged = invoke(*common, "--out", str(tmp_path / "m"), "--target", "township=2")
    only = invoke(*common, "--out", str(tmp_path / "o"), "--target", "township=2", "--only-targets")
    assert merged.exit_code == 0 and only.exit_code == 0, only.output
    m, o = _stops(tmp_path / "m"), _stops(tmp_path / "o")
    # the county store's stops keep its 5 h target; before issue 18 they fell back to 10 h
    assert set(m.loc[m["store_id"] == "RS01", "target_min"]) == {300.0}
    assert set(m.loc[m["store_id"] != "RS01", "target_min"]) == {120.0}
    assert "basic-needs" not in merged.stderr
    # replaced on purpose: the fallback is used, and said
    assert set(o.loc[o["store_id"] == "RS01", "target_min"]) == {600.0}
    assert "county stores have no delivery target and are planned against the 10 h" in only.stderr


# --------------------------------------------------------------------------- --match


def test_audit_match_any_takes_the_nearest_store_of_the_level(ws: Path, tmp_path: Path):
    own = invoke("relief", "audit", "--workspace", str(ws), "--out", str(tmp_path / "own"),
                 "--match", "own")  # fmt: skip
    any_ = invoke("relief", "audit", "--workspace", str(ws), "--out", str(tmp_path / "any"),
                  "--match", "any")  # fmt: skip
    assert own.exit_code == 0 and any_.exit_code == 0, any_.output
    a = _audit(tmp_path / "own").set_index(["point_id", "target"]).sort_index()
    b = _audit(tmp_path / "any").set_index(["point_id", "target"]).sort_index()
    town = a.index.get_level_values("target") == "township_3h"
    assert (a.loc[town, "store_id"] != b.loc[town, "store_id"]).any()
    # the nearest store can only be nearer than the own-area one
    assert (b["time_min"] <= a["time_min"] + 1e-9).all()
    assert (b["time_min"] < a["time_min"] - 1e-9).any()


def test_plan_match_own_sends_kits_only_from_stores_of_the_area(ws: Path, tmp_path: Path):
    common = ["relief", "plan", "--workspace", str(ws), "--towns", "440703005,440703006",
              "--time-limit", "0.2"]  # fmt: skip
    res = {m: invoke(*common, "--out", str(tmp_path / m), "--match", m) for m in ("any", "own")}
    assert all(r.exit_code == 0 for r in res.values()), res["own"].output
    code = gpd.read_file(ws, layer="relief_stores").set_index("store_id")["adcode"].astype(str)
    stops = {m: _stops(tmp_path / m) for m in res}
    own = stops["own"]
    assert all(p.startswith(code[s]) for p, s in zip(own["point_id"], own["store_id"], strict=True))
    anyv = stops["any"]
    # under "any" some kits cross a town border; "own" changes the plan
    crossing = [not p.startswith(code[s]) for p, s in zip(anyv["point_id"], anyv["store_id"],
                                                          strict=True)]  # fmt: skip
    assert any(crossing)
    # "own" is "any" with fewer pairs: it can deliver no more, and what it cannot is listed
    assert own["kits"].sum() < anyv["kits"].sum()
    assert "未满足 unmet" in res["own"].stdout


def test_plan_match_own_without_a_store_of_the_area_is_unmet_with_its_reason(
    ws: Path, tmp_path: Path
):
    copy = tmp_path / "no_store.gpkg"
    copy.write_bytes(ws.read_bytes())
    w = Workspace(copy)
    stores = w.read("relief_stores")
    keep = stores[~stores["store_id"].isin(["RS01", "RS03"])]  # no county, no 440703005 store
    w.write_layers(
        {"relief_stores": keep},
        {"relief_stores": {"synthetic": True, "source": "test", "method": "two stores removed"}},
    )
    common = ["relief", "plan", "--workspace", str(copy), "--towns", "440703005",
              "--time-limit", "0.2"]  # fmt: skip
    own = invoke(*common, "--out", str(tmp_path / "own"), "--match", "own")
    any_ = invoke(*common, "--out", str(tmp_path / "any"))
    assert own.exit_code == 0 and any_.exit_code == 0, own.output
    assert "(no store of its area)" in own.stdout
    # without the area rule the other towns' stores send kits (as far as their trucks allow)
    assert "no store of its area" not in any_.stdout and len(_stops(tmp_path / "any")) > 0
    assert len(_stops(tmp_path / "own")) == 0


# --------------------------------------------------------------------------- other options


def test_dispatch_minutes_and_disaster_factor_change_the_times(ws: Path, tmp_path: Path):
    runs = {
        "base": [],
        "prep": ["--dispatch-min", "90"],
        "slow": ["--disaster-factor", "0.3"],
    }
    for name, extra in runs.items():
        res = invoke(
            "relief", "audit", "--workspace", str(ws), "--out", str(tmp_path / name), *extra
        )
        assert res.exit_code == 0, res.output
    t = {n: _audit(tmp_path / n).set_index(["point_id", "target"])["time_min"] for n in runs}
    # 90 instead of 30 minutes of loading: every time is exactly an hour later
    assert ((t["prep"] - t["base"]) - 60.0).abs().max() < 1e-6
    # half the truck speed: longer everywhere a road is driven
    assert (t["slow"] >= t["base"] - 1e-9).all() and (t["slow"] > t["base"] + 1.0).mean() > 0.9


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["relief", "scenario", "--close-roads", "x", "--close-depth", "0.5"], "--close-depth"),
        (["relief", "scenario", "--close-roads", "x", "--buffer-m", "50"], "--buffer-m"),
        (["relief", "preposition", "--candidates-crs", "gcj02"], "--candidates-crs"),
        (["relief", "plan", "--towns", "440703005", "--people-field", "n"], "--people-field"),
        (["relief", "plan", "--share", "0.2"], "--share"),
    ],
)
def test_options_without_effect_in_the_call_stop_it(ws: Path, tmp_path: Path, args, says):
    res = invoke(*args, "--workspace", str(ws), "--out", str(tmp_path))
    assert res.exit_code == 2
    assert f"{says} 只在" in res.output and f"{says} has an effect only with" in res.output
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("layer", "args", "says"),
    [
        ("elder_care", ["--aged-share", "0.2"], "--aged-share has an effect only with --layer"),
        ("population", ["--cell-m", "50"], "--cell-m has an effect only with --by-unit"),
        ("population", ["--margin-m", "500"], "--margin-m has an effect only with --layer roads"),
        ("roads", ["--by-unit"], "--by-unit has an effect only with --layer population"),
    ],
)
def test_import_raw_source_options_need_their_source(ws: Path, tmp_path: Path, layer, args, says):
    copy = tmp_path / "ws.gpkg"
    copy.write_bytes(ws.read_bytes())
    before = copy.read_bytes()
    table = tmp_path / "list.csv"
    table.write_text("id,name,lon,lat\n1,a,113.05,22.6\n", encoding="utf-8")
    res = invoke("import", str(table), "--layer", layer, "--workspace", str(copy), *args)
    assert res.exit_code == 2 and says in res.output and "只在" in res.output
    assert copy.read_bytes() == before  # nothing written


def test_plan_refuses_both_demand_sources(ws: Path, tmp_path: Path):
    pts = tmp_path / "affected.gpkg"
    gpd.read_file(ws, layer="shelters").head(2).assign(people=10).to_file(pts)
    res = invoke("relief", "plan", "--workspace", str(ws), "--out", str(tmp_path / "o"),
                 "--affected", str(pts), "--towns", "440703005")  # fmt: skip
    assert res.exit_code == 2 and "give --affected or --towns, not both" in res.output


def test_scale_run_level_applies_to_the_boundaries_job_only(ws: Path, tmp_path: Path):
    res = invoke("scale", "run", "coverage", "--workspace", str(ws), "--level", "town",
                 "--workers", "0", "--out", str(tmp_path))  # fmt: skip
    assert res.exit_code == 2 and "--level has an effect only with scale run boundaries" in (
        res.output
    )


def test_siting_k_applies_to_the_maximal_covering_model_only(ws: Path, tmp_path: Path):
    res = invoke("siting", "--workspace", str(ws), "--model", "lscp", "--k", "3",
                 "--out", str(tmp_path))  # fmt: skip
    assert res.exit_code == 2 and "--k has an effect only with --model mclp" in res.output


def test_help_has_no_literal_click_markers():
    from tests.test_cli_help import help_texts

    text = help_texts()
    assert "\\b" not in text and "\b" not in text
    scale = invoke("scale", "run", "--help").output
    assert "\n  例 e.g.  geo-mz scale run coverage" in scale  # the example keeps its lines


# --------------------------------------------------------------------------- optional packages


def _without(modules: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``geo-mz ARGS`` in a fresh interpreter where ``modules`` cannot be imported."""
    code = (
        "import sys\n"
        f"for m in {modules.split(',')!r}:\n"
        "    sys.modules[m] = None\n"
        "from geo_mz.cli import main\n"
        f"main({list(args)!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.parametrize(
    ("modules", "args", "extra"),
    [
        ("dask,distributed", ["scale", "run", "coverage", "--workspace", "{ws}"], "scale"),
        ("psycopg", ["scale", "push", "{ws}", "postgresql://nobody@nowhere/db"], "postgis"),
        ("psycopg", ["webmap", "import", "{ws}", "--database", "postgresql://x/y"], "postgis"),
        ("flask", ["serve", "--workspace", "{ws}"], "web"),
        ("uvicorn", ["users", "list", "--workspace", "{ws}"], "web"),
        ("a2wsgi", ["serve", "--workspace", "{ws}"], "web"),
    ],
)
def test_a_missing_optional_package_names_its_extra(ws: Path, modules, args, extra):
    res = _without(modules, *(a.format(ws=ws) for a in args))
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert f"pip install 'geo-mz[{extra}]'" in res.stderr and "缺少可选依赖" in res.stderr
    if extra == "scale":
        assert "--workers 0" in res.stderr  # and what works without it


def test_scale_run_without_dask_works_in_process(ws: Path, tmp_path: Path):
    res = _without(
        "dask,distributed", "scale", "run", "coverage", "--workspace", str(ws), "--by", "town",
        "--codes", "440703005", "--workers", "0", "--out", str(tmp_path),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "scale_coverage.gpkg").is_file()


def test_any_optional_import_that_slips_through_is_a_message(monkeypatch):
    @click.command("needs-dask")
    def needs_dask() -> None:
        import dask.distributed  # noqa: F401

    monkeypatch.setitem(sys.modules, "dask", None)
    main.add_command(needs_dask)
    try:
        res = CliRunner().invoke(main, ["needs-dask"])
    finally:
        main.commands.pop("needs-dask")
    assert res.exit_code == 2 and "pip install 'geo-mz[scale]'" in res.output
    assert not isinstance(res.exception, ModuleNotFoundError)


# --------------------------------------------------------------------------- messages


def test_unit_level_error_is_bilingual_and_says_what_to_do(ws: Path):
    units = gpd.read_file(ws, layer="admin_units")
    with pytest.raises(UnitsError) as exc:
        units_of_level(units[units["level"] != "village"], "village")
    msg = str(exc.value)
    assert "没有 village 级单元" in msg and "has no village units" in msg
    assert "geo-mz import FILE --layer admin_units" in msg


@pytest.mark.slow
def test_scale_national_counts_the_package_files_instead_of_listing_them(
    echarts_counties, tmp_path: Path, monkeypatch
):
    from geo_mz.datasets.echarts_package import TARBALL_NAME

    cache, _ = echarts_counties
    monkeypatch.setenv("GEO_MZ_CACHE_DIR", str(tmp_path / "cache"))  # read the tarball again
    res = invoke("scale", "national", "--out", str(tmp_path / "nat.gpkg"), "--codes", "4407",
                 "--boundaries-only", "--tarball", str(cache / TARBALL_NAME))  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines() == [f"{tmp_path / 'nat.gpkg'}: admin_units 7"]
    listed = [line for line in res.stderr.splitlines() if line.strip().endswith(".geojson")]
    assert len(listed) == 0  # ~390 file names before; now a bar counts them
    assert "全国县界 national counties" in res.stderr
