"""Place-name standardisation checks, proposal checks and the ``geo-mz names`` commands.

Real data: the national provinces/cities/counties and the Guangdong (44) towns and villages of
../shared/data/placenames, loaded once per session (a few seconds); planted cases in small
hand-made tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from click.testing import CliRunner
from shapely.geometry import Point

from geo_mz.core.results import ReportTable
from geo_mz.names.check import (
    CHECKS,
    FINDING_COLUMNS,
    NamesError,
    check_names,
    county_summary,
    load_rules,
    parse_name,
    report_tables,
)
from geo_mz.names.gazetteer import build_index, load_gazetteer, load_index, name_pinyin
from geo_mz.names.proposal import check_proposal
from geo_mz.outputs.names import write_names_report

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def gd_folder(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All provinces, cities and counties; the towns and villages of Guangdong only."""
    src = shared_data / "placenames"
    out = tmp_path_factory.mktemp("gd_names")
    for stem in ("provinces", "cities", "areas"):
        (out / f"{stem}.csv").write_bytes((src / f"{stem}.csv").read_bytes())
    for stem in ("streets", "villages"):
        path = src / f"{stem}.csv" if (src / f"{stem}.csv").exists() else src / f"{stem}.csv.gz"
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df[df["provinceCode"] == "44"].to_csv(out / f"{stem}.csv", index=False)
    return out


@pytest.fixture(scope="session")
def gd_gaz(gd_folder: Path) -> pd.DataFrame:
    return load_gazetteer(gd_folder)


@pytest.fixture(scope="session")
def gd_index(gd_gaz: pd.DataFrame):
    return build_index(gd_gaz)


@pytest.fixture(scope="session")
def gd_findings(gd_gaz: pd.DataFrame) -> pd.DataFrame:
    return check_names(gd_gaz, code_prefix="44")


def _table(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """A names table with the Pengjiang chain above the planted rows."""
    head = [
        ("44", "广东省", "province"),
        ("4407", "江门市", "city"),
        ("440703", "蓬江区", "county"),
        ("440703101", "棠下镇", "town"),
        ("440703102", "荷塘镇", "town"),
    ]
    return pd.DataFrame(head + rows, columns=["code", "name", "level"])


# --------------------------------------------------------------------------- rules and parsing


def test_rules_have_a_source_for_every_check_and_list() -> None:
    rules = load_rules()
    assert set(rules.checks) == set(CHECKS)
    for spec in rules.checks.values():
        assert spec.rule and spec.source and spec.flag
    terms = {t for tl in rules.lists for t in tl.terms}
    reported = REPO.parent / "shared/data/placenames/restricted_terms_as_reported.csv"
    if reported.is_file():  # every reported term is in a list
        assert set(pd.read_csv(reported)["term"]) <= terms
    for tl in rules.lists:
        assert tl.source and tl.terms
    assert rules.traditional["崙"] == "仑"
    assert "干" not in rules.traditional  # ambiguous or standard characters are left out


@pytest.mark.parametrize(
    ("name", "level", "specific", "generic", "category"),
    [
        ("周郡村委会", "village", "周郡", "", "村"),
        ("棠下村村民委员会", "village", "棠下", "村", "村"),
        ("岗贝社区居民委员会", "village", "岗贝", "", "社区"),
        ("岗贝社区", "village", "岗贝", "社区", "社区"),
        ("门头村社区居委会", "village", "门头村", "", "社区"),  # the community called 门头村
        ("东风", "village", "东风", "", "其他"),
        ("棠下镇", "town", "棠下", "镇", "乡级"),
        ("白沙街道", "town", "白沙", "街道", "乡级"),
        ("蓬江区", "county", "蓬江", "区", "县级及以上"),
        ("鄂伦春自治旗", "county", "鄂伦春", "自治旗", "县级及以上"),
    ],
)
def test_parse_name(name: str, level: str, specific: str, generic: str, category: str) -> None:
    p = parse_name(name, level)
    assert (p.specific, p.generic, p.category) == (specific, generic, category)


def test_parse_name_rejects_unknown_level() -> None:
    with pytest.raises(NamesError, match="unknown level"):
        parse_name("棠下镇", "township")


# --------------------------------------------------------------------------- real data


def test_real_duplicate_villages_in_a_town(gd_findings: pd.DataFrame, gd_folder: Path) -> None:
    # 揭阳市榕城区登岗镇 has 登岗居委会 and 登岗社区居民委员会: two communities called 登岗
    dup = gd_findings[(gd_findings["check"] == "duplicate") & (gd_findings["scope"] == "town")]
    case = dup[dup["code"] == "445202105001"]
    assert len(case) == 1
    assert case.iloc[0]["related_codes"] == "445202105002"
    assert case.iloc[0]["severity"] == "error"
    assert case.iloc[0]["scope_code"] == "445202105"
    # by hand, from the raw table: both in town 445202105, both residents' committees of 登岗
    raw = pd.read_csv(gd_folder / "villages.csv", dtype=str)
    town = raw[raw["streetCode"] == "445202105"]
    both = town[town["name"].str.fullmatch(r"登岗(社区)?(居委会|居民委员会)")]
    assert sorted(both["code"]) == ["445202105001", "445202105002"]


def test_real_duplicate_towns_in_a_county(gd_findings: pd.DataFrame, gd_folder: Path) -> None:
    # 珠海市香洲区: 南屏镇 and 南屏科技园 share the 专名 南屏
    dup = gd_findings[(gd_findings["check"] == "duplicate") & (gd_findings["scope"] == "county")]
    assert set(dup.loc[dup["code"] == "440402102", "related_codes"]) == {"440402401"}
    raw = pd.read_csv(gd_folder / "streets.csv", dtype=str)
    county = raw[raw["areaCode"] == "440402"]
    assert sorted(county.loc[county["name"].str.startswith("南屏"), "name"]) == [
        "南屏科技园",
        "南屏镇",
    ]


def test_real_duplicate_county_names_nationally(gd_findings: pd.DataFrame, gd_folder: Path) -> None:
    nat = gd_findings[(gd_findings["check"] == "duplicate") & (gd_findings["scope"] == "national")]
    baiyun = nat[nat["code"] == "440111"]  # 广州市白云区 and 贵阳市白云区
    assert len(baiyun) == 1
    areas = pd.read_csv(gd_folder / "areas.csv", dtype=str)
    assert sorted(areas.loc[areas["name"] == "白云区", "code"]) == ["440111", "520113"]
    assert baiyun.iloc[0]["related_codes"] == "520113"
    assert "同名" in baiyun.iloc[0]["detail"]
    # a city and its own county-level namesake (东莞市 4419 / 441900) are one place
    dongguan = nat[nat["code"].isin(["4419", "441900"])]
    assert not dongguan["related_codes"].str.contains("4419").any()


def test_real_homophones_in_pengjiang(gd_gaz: pd.DataFrame) -> None:
    # 蓬江区白沙街道: 花园社区居委会 and 华园社区居委会 (hua yuan)
    f = check_names(gd_gaz, code_prefix="440703", checks=["homophone"])
    town = f[f["scope"] == "town"]
    assert set(town["code"]) == {"440703002106", "440703002110"}
    assert name_pinyin("花园") == name_pinyin("华园") == "hua yuan"
    row = town[town["code"] == "440703002106"].iloc[0]
    assert row["related_codes"] == "440703002110"
    assert row["flag"] == "DUP"


def test_findings_table_shape(gd_findings: pd.DataFrame) -> None:
    assert list(gd_findings.columns) == list(FINDING_COLUMNS)
    assert gd_findings["code"].str.startswith("44").all()
    assert set(gd_findings["check"]) <= set(CHECKS)
    assert gd_findings["rule"].str.len().gt(0).all()
    assert gd_findings["source"].str.len().gt(0).all()
    # the Guangdong towns and villages give cases of most checks
    assert {"duplicate", "homophone", "rare_char", "traditional", "missing_generic"} <= set(
        gd_findings["check"]
    )


def test_county_summary_and_report_tables(gd_findings: pd.DataFrame) -> None:
    summary = county_summary(gd_findings)
    assert list(summary.columns[:2]) == ["county_code", "county_name"]
    assert (summary[list(CHECKS)].sum(axis=1) == summary["total"]).all()
    assert summary["total"].sum() == len(gd_findings)
    pj = summary[summary["county_code"] == "440703"].iloc[0]
    # 石滘村: 滘 is outside GB 2312 but a regional standard place-name character, not rare
    assert pj["homophone"] == 2 and pj["rare_char"] == 0
    assert not ((gd_findings["name"] == "石滘村委会") & (gd_findings["check"] == "rare_char")).any()
    tables = report_tables(gd_findings, max_cases=5)
    assert all(isinstance(t, ReportTable) for t in tables)
    assert tables[0].title_en == "Findings by check"
    assert len(tables[0].rows) == len(CHECKS)
    dup = next(t for t in tables if t.title_en.startswith("duplicate name"))
    assert len(dup.rows) == 5 and "more" in dup.note


def test_write_names_report(gd_gaz: pd.DataFrame, tmp_path: Path) -> None:
    f = check_names(gd_gaz, code_prefix="440703")
    paths = write_names_report(f, tmp_path / "r", name="蓬江区", adcode="440703", units_checked=146)
    html = paths["html"].read_text(encoding="utf-8")
    assert "花园社区居委会" in html and "蓬江区" in html
    xl = pd.read_excel(paths["xlsx"], sheet_name=None)
    assert set(xl) == {"汇总 summary", "按县 counties", "问题 findings"}
    assert len(xl["问题 findings"]) == len(f)
    assert len(pd.read_csv(paths["csv"], dtype=str)) == len(f)


# --------------------------------------------------------------------------- planted cases


def test_planted_big_foreign_odd_words() -> None:
    t = _table(
        [
            ("440703101201", "宇宙村委会", "village"),
            ("440703101202", "天按门村委会", "village"),  # homophone of 天安门
            ("440703101203", "维也纳社区居委会", "village"),
            ("440703101204", "皇帝村委会", "village"),
            ("440703101205", "王府井社区", "village"),  # exempt: historical name
            ("440703101206", "新安村委会", "village"),
        ]
    )
    f = check_names(t, checks=["big", "foreign", "odd_word"])
    got = dict(zip(f["code"], f["check"], strict=True))
    assert got == {
        "440703101201": "big",
        "440703101202": "big",
        "440703101203": "foreign",
        "440703101204": "odd_word",
    }
    assert "谐音" in f.loc[f["code"] == "440703101202", "detail"].iloc[0]
    assert f.loc[f["code"] == "440703101201", "source"].iloc[0].count("zyq.cm") == 1
    assert set(f["flag"]) == {"BIG", "FOREIGN", "ODD"}


def test_planted_characters_and_scripts() -> None:
    t = _table(
        [
            ("440703101201", "崙上村委会", "village"),  # traditional/variant 崙 -> 仑
            ("440703101202", "石𬒈村委会", "village"),  # 𬒈 is outside GB 2312 and not regional
            ("440703101203", "A区社区居委会", "village"),
            ("440703101204", "幸福·家园社区", "village"),
            ("440703101205", "复兴路23号社区", "village"),
            ("440703101206", "第七居委会", "village"),
            ("440703101207", "123村", "village"),
            ("440703101208", "新安村委会", "village"),
        ]
    )
    f = check_names(t, checks=["traditional", "rare_char", "mixed_script", "number_name"])
    by = f.groupby("code")["check"].apply(set).to_dict()
    assert by == {
        "440703101201": {"traditional"},
        "440703101202": {"rare_char"},
        "440703101203": {"mixed_script"},
        "440703101204": {"mixed_script"},
        "440703101205": {"mixed_script"},
        "440703101206": {"number_name"},
        "440703101207": {"mixed_script", "number_name"},
    }
    detail = f.set_index(["code", "check"])["detail"]
    assert "崙→仑" in detail[("440703101201", "traditional")]
    assert "U+2C488" in detail[("440703101202", "rare_char")]
    assert "字母 A" in detail[("440703101203", "mixed_script")]
    assert "符号 ·" in detail[("440703101204", "mixed_script")]


def test_planted_missing_generic_and_code_type() -> None:
    t = _table(
        [
            ("440703101201", "东风", "village"),
            ("440703101202", "周郡村委会", "village"),  # the title implies 村
            ("440703101003", "岗贝社区居民委员会", "village"),
            ("440703101004", "西湖村委会", "village"),  # 村 with a 居委会 code (004)
            ("440703103", "新会", "town"),
            ("440703001", "良化镇", "town"),  # 镇 with a 街道 code (001)
        ]
    )
    f = check_names(t, checks=["missing_generic", "code_type"])
    got = sorted(zip(f["code"], f["check"], strict=True))
    assert got == [
        ("440703001", "code_type"),
        ("440703101004", "code_type"),
        ("440703101201", "missing_generic"),
        ("440703103", "missing_generic"),
    ]


def test_planted_duplicates_and_homophones_by_scope() -> None:
    t = _table(
        [
            ("440703101201", "新村村委会", "village"),
            ("440703101202", "新村村民委员会", "village"),  # same village name, same town
            ("440703101203", "汪庄村委会", "village"),
            ("440703101204", "王庄村委会", "village"),  # same sound, same town
            ("440703101005", "新村社区居委会", "village"),  # a community: another class
            ("440703102201", "汪庄村委会", "village"),  # same name, other town of the county
            ("440703104", "棠下街道", "town"),  # same 专名 as 棠下镇 in the county
        ]
    )
    f = check_names(t, checks=["duplicate", "homophone"])
    key = set(zip(f["code"], f["check"], f["scope"], f["severity"], strict=True))
    assert ("440703101201", "duplicate", "town", "error") in key
    assert ("440703101202", "duplicate", "town", "error") in key
    assert ("440703101203", "homophone", "town", "warning") in key
    assert ("440703101204", "homophone", "town", "warning") in key
    assert ("440703102201", "duplicate", "county", "notice") in key
    assert ("440703101", "duplicate", "county", "error") in key
    assert ("440703104", "duplicate", "county", "error") in key
    assert not (f["code"] == "440703101005").any()
    row = f[(f["code"] == "440703101201") & (f["check"] == "duplicate")].iloc[0]
    assert row["related_codes"] == "440703101202"
    assert row["related_names"] == "广东省 江门市 蓬江区 棠下镇 新村村民委员会"


def test_check_names_bad_input() -> None:
    with pytest.raises(NamesError, match="lacks the column"):
        check_names(pd.DataFrame({"code": ["44"], "name": ["广东省"]}))
    with pytest.raises(NamesError, match="unknown checks"):
        check_names(_table([]), checks=["typos"])


# --------------------------------------------------------------------------- proposals


def test_proposal_refuses_a_duplicate_and_names_the_existing_place(gd_index) -> None:
    res = check_proposal("周郡村", "village", "440703101", gd_index)
    assert not res.ok
    dup = [r for r in res.reasons if r.check == "duplicate"]
    assert len(dup) == 1 and dup[0].severity == "refuse"
    assert dup[0].related_codes == ("440703101213",)
    assert "广东省 江门市 蓬江区 棠下镇 周郡村委会" in dup[0].message
    assert dup[0].source
    assert res.parent_full_name == "广东省 江门市 蓬江区 棠下镇"


def test_proposal_accepts_a_clean_name(gd_index) -> None:
    res = check_proposal("新安村", "village", "440703101", gd_index)
    assert res.ok, res.to_frame()
    assert res.reasons == ()
    assert (res.parsed.specific, res.parsed.generic) == ("新安", "村")


def test_proposal_homophone_words_and_generic(gd_index, gd_gaz: pd.DataFrame) -> None:
    res = check_proposal("周君村", "village", "440703101", gd_index)  # sounds like 周郡
    assert not res.ok
    assert [r.check for r in res.reasons] == ["homophone"]
    res = check_proposal("宇宙村", "village", "440703101", gd_index)
    assert [r.check for r in res.reasons] == ["big"]
    res = check_proposal("幸福", "village", "440703101", gd_index)
    assert [r.check for r in res.reasons] == ["missing_generic"]
    # a town: scope is the county; 棠下街道 repeats the 专名 of 棠下镇
    res = check_proposal("棠下街道", "town", "440703", gd_index)
    assert [r.check for r in res.reasons] == ["duplicate"]
    # a county: scope is the country (广州市白云区 exists)
    res = check_proposal("白云区", "county", "4407", gd_index)
    assert not res.ok and "440111" in res.reasons[0].related_codes
    # the same verdict from a plain table instead of the index
    res = check_proposal("周郡村", "village", "440703101", gd_gaz)
    assert not res.ok and res.reasons[0].related_codes == ("440703101213",)


def test_proposal_nearby_names(gd_index) -> None:
    here = Point(113.05, 22.62)
    names = gpd.GeoDataFrame(
        {"name_id": ["N1", "N2", "N3"], "name": ["新安村", "新鞍村", "新安村"]},
        geometry=[Point(113.052, 22.62), Point(113.05, 22.621), Point(113.2, 22.62)],
        crs="EPSG:4490",
    )
    res = check_proposal(
        "新安村", "village", "440703101", gd_index, point=here, place_names=names, radius_m=500
    )
    nearby = [r for r in res.reasons if r.check == "nearby"]
    assert [(r.severity, r.related_codes) for r in nearby] == [
        ("refuse", ("N1",)),
        ("warn", ("N2",)),
    ]
    assert not res.ok
    assert "米" in nearby[0].message


def test_proposal_bad_input(gd_index) -> None:
    with pytest.raises(NamesError, match="not in the gazetteer"):
        check_proposal("新安村", "village", "440703999", gd_index)
    with pytest.raises(NamesError, match="belongs to a town"):
        check_proposal("新安村", "village", "440703", gd_index)
    with pytest.raises(NamesError, match="empty"):
        check_proposal("  ", "village", "440703101", gd_index)


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("GEO_MZ_CACHE_DIR", str(cache))
    return cache


def _run(*args: str):
    from geo_mz.cli.names import names

    return CliRunner().invoke(names, list(args))


def test_cli_search_check_report(gd_folder: Path, cli_env: Path, tmp_path: Path) -> None:
    data = ["--data", str(gd_folder)]
    res = _run("search", "zhoujun", "--code-prefix", "440703", *data)
    assert res.exit_code == 0, res.output
    assert (
        "440703101213  周郡村委会  [pinyin 65]  广东省 江门市 蓬江区 棠下镇 周郡村委会"
        in res.output
    )
    assert any(p.name.startswith("gazetteer-") for p in cli_env.iterdir())
    assert load_index(gd_folder, cache_dir=cli_env).origin["from_cache"]

    res = _run("check", "周郡村", "--level", "village", "--parent", "440703101", *data)
    assert res.exit_code == 4, res.output
    assert "不予通过 REFUSED" in res.output and "440703101213" in res.output
    res = _run("check", "新安村", "--level", "village", "--parent", "440703101", "--json", *data)
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["ok"] is True
    res = _run("check", "新安村", "--level", "village", "--parent", "4407039", *data)
    assert res.exit_code == 2

    out = tmp_path / "names"
    res = _run("report", "--code-prefix", "440703", "--out", str(out), *data)
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {
        "names_report.html",
        "names_findings.xlsx",
        "names_findings.csv",
    }
    assert "同音" in res.output


def test_cli_search_no_match_and_bad_level(gd_folder: Path, cli_env: Path) -> None:
    data = ["--data", str(gd_folder)]
    res = _run("search", "zzzzqqqq", "--code-prefix", "440703", *data)
    assert res.exit_code == 0 and "无结果 / no match" in res.output
    res = _run("search", "棠下", "--level", "nowhere", *data)
    assert res.exit_code == 2
