"""Gazetteer loading and search on the real division tables (../shared/data/placenames)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geo_mz.names.gazetteer import (
    LEVELS,
    GazetteerIndex,
    build_index,
    index_cache_path,
    index_frame,
    load_gazetteer,
    load_index,
    name_pinyin,
    names_pinyin,
    place_readings,
    search,
    search_arrays,
    search_scan,
    subtree,
)


@pytest.fixture(scope="module")
def folder(shared_data: Path) -> Path:
    path = shared_data / "placenames"
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing in CI")
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="module")
def gaz(folder: Path) -> pd.DataFrame:
    return load_gazetteer(folder)


@pytest.fixture(scope="module")
def index(gaz: pd.DataFrame) -> GazetteerIndex:
    return build_index(gaz)


# --------------------------------------------------------------------------- loading


def test_columns_and_levels(gaz: pd.DataFrame) -> None:
    assert list(gaz.columns) == [
        "code",
        "name",
        "level",
        "parent_code",
        "full_name",
        "pinyin",
        "initials",
    ]
    assert set(gaz["level"]) == set(LEVELS)
    assert gaz["code"].is_unique
    assert gaz[["code", "name", "full_name", "pinyin", "initials"]].notna().all().all()
    lengths = gaz.groupby("level")["code"].agg(lambda c: set(c.str.len()))
    assert lengths.to_dict() == {
        "province": {2},
        "city": {4},
        "county": {6},
        "town": {9},
        "village": {12},
    }


def test_counts_match_the_files(gaz: pd.DataFrame, folder: Path) -> None:
    provinces = pd.read_csv(folder / "provinces.csv", dtype=str)
    assert (gaz["level"] == "province").sum() == len(provinces)
    assert 30 <= len(provinces) <= 34
    assert gaz.loc[gaz["level"] == "province", "parent_code"].isna().all()


def test_pengjiang_subtree(gaz: pd.DataFrame) -> None:
    sub = gaz[gaz["code"].str.startswith("440703")]
    counts = sub["level"].value_counts().to_dict()
    assert counts == {"county": 1, "town": 6, "village": 139}
    towns = set(sub.loc[sub["level"] == "town", "code"])
    villages = sub[sub["level"] == "village"]
    assert set(villages["parent_code"]) <= towns


def test_full_name_chain(gaz: pd.DataFrame) -> None:
    row = gaz.set_index("code").loc["440703101"]
    assert row["name"] == "棠下镇"
    assert "广东省 江门市 蓬江区 棠下镇" in row["full_name"]
    village = gaz[gaz["parent_code"] == "440703101"].iloc[0]
    assert village["full_name"].startswith("广东省 江门市 蓬江区 棠下镇 ")


def test_full_name_skips_placeholder_cities(gaz: pd.DataFrame) -> None:
    dongcheng = gaz.set_index("code").loc["110101"]
    assert dongcheng["full_name"] == "北京市 东城区"
    assert not gaz.loc[gaz["level"] != "city", "full_name"].str.contains("市辖区").any()


def test_pinyin_and_initials(gaz: pd.DataFrame) -> None:
    row = gaz.set_index("code").loc["440703101"]
    assert row["pinyin"] == "tang xia zhen"
    assert row["initials"] == "txz"
    assert gaz["pinyin"].str.fullmatch(r"[a-z0-9]+( [a-z0-9]+)*|").all()
    sample = gaz.sample(20_000, random_state=0)
    first = sample["pinyin"].str.split(" ").map(lambda s: "".join(x[:1] for x in s))
    assert (first == sample["initials"]).all()
    zero = gaz.set_index("name").loc["八五〇农场", "pinyin"]
    assert zero == "ba wu ling nong chang"


@pytest.mark.parametrize(
    ("name", "pinyin"),
    [
        ("六安市", "lu an shi"),
        ("蚌埠市", "beng bu shi"),
        ("丽水市", "li shui shi"),
        ("番禺区", "pan yu qu"),
        ("涡阳县", "guo yang xian"),
        ("铅山县", "yan shan xian"),
        ("重庆市", "chong qing shi"),
        # place-name polyphones of the lexicon (layers/rules/place_readings.csv)
        ("长治市", "chang zhi shi"),
        ("都匀市", "du yun shi"),
        ("佛山市", "fo shan shi"),
        ("什邡市", "shi fang shi"),
        ("漯河市", "luo he shi"),
        ("长子县", "zhang zi xian"),
    ],
)
def test_polyphonic_place_names(gaz: pd.DataFrame, name: str, pinyin: str) -> None:
    readings = set(gaz.loc[gaz["name"] == name, "pinyin"])
    assert readings == {pinyin}
    assert name_pinyin(name) == pinyin


def test_lexicon_is_consistent() -> None:
    entries = place_readings()
    assert len(entries) > 50
    for e in entries:
        assert len(e.text) == len(e.syllables)
        assert all(r.isascii() and r.islower() for r in e.syllables)
        assert e.source


def test_regional_readings_in_the_gazetteer(gaz: pd.DataFrame) -> None:
    # 圩 is xu (a market) in Guangdong, wei (a dyke) in Jiangsu; 六合 is lu he only in Nanjing
    by = gaz.set_index("code")["pinyin"]
    xinxu = gaz[(gaz["name"] == "新圩镇") & (gaz["level"] == "town")]
    readings = {c[:2]: by[c] for c in xinxu["code"]}
    assert readings["44"] == "xin xu zhen"
    assert readings["36"] == "xin xu zhen" or readings["36"] == "xin wei zhen"
    dawei = gaz[(gaz["name"] == "大圩镇") & gaz["code"].str.startswith("3401")]
    assert set(dawei["pinyin"]) == {"da wei zhen"}
    assert by["320116"] == "lu he qu"
    liuhe = gaz[(gaz["name"] == "六合镇") & ~gaz["code"].str.startswith("3201")]
    assert len(liuhe) > 0 and set(liuhe["pinyin"]) == {"liu he zhen"}
    assert by["440606004"] == "le liu jie dao"  # 顺德区勒流街道


# --------------------------------------------------------------------------- search


def test_search_characters_with_code_prefix(index: GazetteerIndex) -> None:
    res = search(index, "棠下", code_prefix="440703")
    assert list(res.columns) == ["code", "name", "level", "full_name", "match", "score"]
    assert res.iloc[0]["code"] == "440703101"
    assert res.iloc[0]["name"] == "棠下镇"
    assert res.iloc[0]["match"] == "prefix"
    assert res["code"].str.startswith("440703").all()


def test_search_exact_name(index: GazetteerIndex) -> None:
    res = search(index, "蓬江区")
    assert res.iloc[0]["code"] == "440703"
    assert res.iloc[0]["match"] == "exact"
    assert res.iloc[0]["score"] == 100


def test_search_pinyin(index: GazetteerIndex) -> None:
    res = search(index, "tangxia")
    assert "440703101" in set(res["code"])
    assert set(res["match"]) == {"pinyin"}
    assert search(index, "tangxia", code_prefix="440703").iloc[0]["code"] == "440703101"
    # spaces and tones (marks or digits) are ignored
    for q in ["tang xia", "táng xià", "tang2 xia4"]:
        assert search(index, q, code_prefix="440703").iloc[0]["code"] == "440703101"


def test_search_pinyin_reads_place_name_polyphones(index: GazetteerIndex) -> None:
    # 勒流 is le liu, 东涌 (广州南沙) dong chong: pypinyin alone reads lei liu, dong yong
    assert search(index, "leliu", code_prefix="4406").iloc[0]["code"] == "440606004"
    assert "440606004" not in set(search(index, "leiliu", code_prefix="4406")["code"])
    hits = search(index, "dongchong", code_prefix="44", limit=50)
    assert "东涌镇" in set(hits.loc[hits["match"] == "pinyin", "name"])


def test_search_initials(index: GazetteerIndex) -> None:
    res = search(index, "txz", limit=50)
    assert "440703101" in set(res["code"])
    assert set(res["match"]) == {"initials"}
    res = search(index, "txz", code_prefix="4407")
    assert res.iloc[0]["code"] == "440703101"


def test_search_fuzzy(index: GazetteerIndex) -> None:
    res = search(index, "棠下城")  # a typo that is not a homophone
    assert res.iloc[0]["code"] == "440703101"
    assert res.iloc[0]["match"] == "fuzzy"
    assert search(index, "棠下城", fuzzy=False).empty


def test_search_homophone_typo(index: GazetteerIndex) -> None:
    # 真 zhen for 镇 zhen: same sound, found through the pinyin tier (above fuzzy)
    res = search(index, "棠下真")
    hit = res[res["code"] == "440703101"]
    assert len(hit) == 1
    assert hit.iloc[0]["match"] == "pinyin"


def test_exact_characters_outrank_homophones(index: GazetteerIndex, gaz: pd.DataFrame) -> None:
    # 塘下镇 (Rui'an, 330381101) and 棠下镇 (Pengjiang) are both "tang xia zhen" towns; the
    # homophone has the lower code, so only the tier puts the typed characters first.
    both = gaz[gaz["code"].isin(["330381101", "440703101"])]
    assert set(both["pinyin"]) == {"tang xia zhen"}
    assert set(both["name"]) == {"塘下镇", "棠下镇"}
    res = search(index, "棠下镇", levels=["town"])
    assert res.iloc[0]["code"] == "440703101"
    homophone = res.index[res["code"] == "330381101"]
    assert len(homophone) == 1
    assert homophone[0] > 0
    assert res.loc[homophone[0], "match"] == "pinyin"


def test_exact_characters_outrank_village_homophones(
    index: GazetteerIndex, gaz: pd.DataFrame
) -> None:
    # a pair of Pengjiang/Jiangmen-area village names that differ in characters only
    villages = gaz[(gaz["level"] == "village") & gaz["code"].str.startswith("4407")]
    first = villages.drop_duplicates("name")  # keeps the lowest code of each name
    groups = first.groupby("pinyin").filter(lambda g: g["name"].nunique() == 2)
    pair = groups[groups["pinyin"] == groups["pinyin"].iloc[0]].sort_values("code")
    # query the name with the higher code, so code order alone would put the other first
    other, typed = pair["name"].tolist()
    res = search(index, typed, code_prefix="4407", levels=["village"], limit=500, fuzzy=False)
    assert (res["name"] == typed).any() and (res["name"] == other).any()
    last_typed = res.index[res["name"] == typed].max()
    first_other = res.index[res["name"] == other].min()
    assert last_typed < first_other


def test_levels_filter(index: GazetteerIndex) -> None:
    res = search(index, "棠下", levels=["village"], limit=50)
    assert not res.empty
    assert set(res["level"]) == {"village"}
    with pytest.raises(ValueError, match="unknown levels"):
        search(index, "棠下", levels=["hamlet"])


def test_code_prefix_filter(index: GazetteerIndex) -> None:
    res = search(index, "村", code_prefix="440703101", limit=200)
    assert not res.empty
    assert res["code"].str.startswith("440703101").all()
    assert search(index, "棠下", code_prefix="11").query("name == '棠下镇'").empty


def test_ranking_ties_by_level_then_code(index: GazetteerIndex) -> None:
    res = search(index, "棠下", limit=100)
    for _, grp in res.groupby("score", sort=False):
        ranks = grp["level"].map(LEVELS.index).tolist()
        assert ranks == sorted(ranks)
    assert res["score"].is_monotonic_decreasing


def test_limit_and_empty(index: GazetteerIndex) -> None:
    assert len(search(index, "村", limit=7)) == 7
    assert search(index, "").empty
    assert search(index, "zzzzqqqq", fuzzy=False).empty


# --------------------------------------------------------------------------- 周郡村, fast search


def test_search_finds_zhoujun_village(index: GazetteerIndex) -> None:
    zhoujun = "440703101213"  # 广东省 江门市 蓬江区 棠下镇 周郡村委会
    res = search(index, "zhoujun")
    assert res.iloc[0]["code"] == zhoujun
    assert res.iloc[0]["match"] == "pinyin"
    assert res.iloc[0]["full_name"] == "广东省 江门市 蓬江区 棠下镇 周郡村委会"
    # initials: thousands of units start with "zj"; within Pengjiang it is the one
    res = search(index, "zj", code_prefix="440703")
    assert list(res["code"]) == [zhoujun]
    assert res.iloc[0]["match"] == "initials"
    assert zhoujun in set(search(index, "zjc", levels=["village"], code_prefix="4407")["code"])
    # a homophone typo (君 for 郡) is found through the pinyin tier, first nationally
    res = search(index, "周君村")
    assert res.iloc[0]["code"] == zhoujun
    assert res.iloc[0]["match"] == "pinyin"


QUERIES = [
    ("棠下", {}),
    ("zhoujun", {}),
    ("周君村", {}),
    ("棠下城", {}),
    ("村", {"code_prefix": "440703101", "limit": 200}),
    ("txz", {"code_prefix": "4407"}),
    ("棠下镇", {"levels": ["town"], "code_prefix": "44"}),
    ("tang xia", {"code_prefix": "44"}),
    ("zjc", {"code_prefix": "4407", "levels": ["village"]}),
    ("tangxiacheng", {"code_prefix": "44"}),
    ("周郡村委会", {"levels": ["village"], "code_prefix": "440703101"}),
    ("〇", {"code_prefix": "23"}),
]


@pytest.mark.parametrize(("query", "kw"), QUERIES)
def test_search_equals_the_reference_scan(index: GazetteerIndex, query: str, kw: dict) -> None:
    got = search(index, query, **kw)
    want = search_scan(index, query, **kw)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))


def test_search_arrays_matches_search(index: GazetteerIndex) -> None:
    cols = search_arrays(index, "棠下", code_prefix="440703")
    df = search(index, "棠下", code_prefix="440703")
    assert list(cols["code"]) == list(df["code"])
    assert list(cols["score"]) == list(df["score"])


def test_names_pinyin_and_subtree(index: GazetteerIndex, gaz: pd.DataFrame) -> None:
    assert names_pinyin(["六安市", "周郡", "六安市"]) == ["lu an shi", "zhou jun", "lu an shi"]
    sub = subtree(index, "440703101", ["village"])
    assert len(sub) == (gaz["parent_code"] == "440703101").sum()
    assert set(sub["level"]) == {"village"}
    assert sub["parent_code"].eq("440703101").all()
    assert sub.loc[sub["code"] == "440703101213", "pinyin"].iloc[0] == "zhou jun cun wei hui"


# --------------------------------------------------------------------------- cache


@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    """The shipped national provinces/cities/counties with the Pengjiang towns and villages."""
    from geo_mz.datasets import sample_dir

    src = sample_dir()
    out = tmp_path / "data"
    out.mkdir()
    for stem in ("provinces", "cities", "areas"):
        shutil.copy(src / f"{stem}.csv", out / f"{stem}.csv")
    shutil.copy(src / "pengjiang_streets.csv", out / "streets.csv")
    shutil.copy(src / "pengjiang_villages.csv", out / "villages.csv")
    return out


COLUMNS = ["code", "name", "full_name", "level", "level_rank", "pinyin", "syllables", "initials"]


def test_cache_is_written_then_reused(small_folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = load_index(small_folder, cache_dir=cache)
    assert first.origin["from_cache"] is False
    path = Path(first.origin["cache_path"])
    assert path.is_dir() and path.parent == cache
    assert path == index_cache_path(small_folder, cache)
    stamp = (path / "meta.json").stat().st_mtime_ns
    second = load_index(small_folder, cache_dir=cache)
    assert second.origin["from_cache"] is True
    assert second.origin["key"] == first.origin["key"]
    assert (path / "meta.json").stat().st_mtime_ns == stamp  # read, not rewritten
    # the cached arrays are those of build_index
    built = build_index(load_gazetteer(small_folder))
    for col in COLUMNS:
        a, b = getattr(second, col), getattr(built, col)
        assert a.dtype == b.dtype, col
        assert np.array_equal(a, b), col
    pd.testing.assert_frame_equal(index_frame(second), load_gazetteer(small_folder))
    # and search the same
    fresh = load_index(small_folder, cache_dir=cache)
    for q, kw in [("zhoujun", {}), ("周君村", {}), ("棠下", {"levels": ["town"]}), ("zj", {})]:
        pd.testing.assert_frame_equal(search(fresh, q, **kw), search(built, q, **kw))


def test_cache_is_invalidated_when_data_change(small_folder: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = load_index(small_folder, cache_dir=cache)
    with open(small_folder / "villages.csv", "a", encoding="utf-8") as f:
        f.write("440703101999,试验村委会,440703101,44,4407,440703\n")
    second = load_index(small_folder, cache_dir=cache)
    assert second.origin["from_cache"] is False
    assert second.origin["key"] != first.origin["key"]
    assert len(second) == len(first) + 1
    assert search(second, "shiyan", code_prefix="440703").iloc[0]["code"] == "440703101999"
    assert load_index(small_folder, cache_dir=cache).origin["from_cache"] is True
    # --rebuild and a damaged cache both build anew
    assert load_index(small_folder, cache_dir=cache, rebuild=True).origin["from_cache"] is False
    path = Path(second.origin["cache_path"])
    (path / "a_post_items.npy").unlink()
    again = load_index(small_folder, cache_dir=cache)
    assert again.origin["from_cache"] is False
    assert (path / "a_post_items.npy").is_file()


def test_no_cache(small_folder: Path, tmp_path: Path) -> None:
    index = load_index(small_folder, cache_dir=tmp_path / "c", use_cache=False)
    assert index.origin["cache_path"] is None
    assert not (tmp_path / "c").exists()
    assert search(index, "棠下镇").iloc[0]["code"] == "440703101"
