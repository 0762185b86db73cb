"""Place-name pinyin: the reading lexicon and its agreement with a cited evaluation set.

The evaluation set ``tests/data/place_pinyin_eval.csv`` holds 2,376 township names drawn at
random from the shipped division table (readings reviewed against 《现代汉语词典》's place-name
readings) and 65 county-level names with their official romanisation; each row cites its
source.  pypinyin alone is the independent baseline the agreement is compared with.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pypinyin import lazy_pinyin

from geo_mz.names import check_names, name_pinyin, names_pinyin, place_readings

EVAL = Path(__file__).parent / "data" / "place_pinyin_eval.csv"


@pytest.fixture(scope="module")
def evalset() -> pd.DataFrame:
    return pd.read_csv(EVAL, comment="#", dtype=str)


def _agreement(readings: list[str], truth: pd.Series) -> float:
    return sum(a == b for a, b in zip(readings, truth, strict=True)) / len(truth)


def test_eval_set_rows_cite_a_source(evalset: pd.DataFrame) -> None:
    assert evalset["source"].str.len().gt(10).all()
    assert set(evalset["set"]) == {"random_township", "county_official"}
    assert evalset["code"].is_unique
    han = evalset[evalset["name"].str.fullmatch(r"[\u4e00-\u9fff]+")]
    assert len(han) > 0.95 * len(evalset)
    assert (han["pinyin"].str.split(" ").str.len() == han["name"].str.len()).all()


def test_township_agreement_target(evalset: pd.DataFrame) -> None:
    town = evalset[evalset["set"] == "random_township"]
    assert len(town) > 2000
    ours = _agreement(names_pinyin(town["name"].tolist(), town["code"].tolist()), town["pinyin"])
    plain = _agreement([" ".join(lazy_pinyin(n)) for n in town["name"]], town["pinyin"])
    assert ours >= 0.993, ours
    # pypinyin alone misses the place-name polyphones (长 zhang, 都 dou, 勒 lei ...)
    assert plain < 0.985, plain
    assert ours - plain > 0.01


def test_county_official_romanisation(evalset: pd.DataFrame) -> None:
    county = evalset[evalset["set"] == "county_official"]
    ours = names_pinyin(county["name"].tolist(), county["code"].tolist())
    wrong = [
        (n, r, t) for n, r, t in zip(county["name"], ours, county["pinyin"], strict=True) if r != t
    ]
    assert wrong == []
    # without the lexicon most of these are read wrong: the test would catch a lexicon not applied
    plain = _agreement([" ".join(lazy_pinyin(n)) for n in county["name"]], county["pinyin"])
    assert plain < 0.7


@pytest.mark.parametrize(
    ("name", "code", "reading"),
    [
        ("新圩镇", "440232", "xin xu zhen"),  # 圩 xū: market (Guangdong)
        ("新圩镇", "320000", "xin wei zhen"),  # 圩 wéi: dyke (Jiangsu)
        ("新圩镇", None, "xin wei zhen"),  # no code: the fallback entry
        ("六合镇", "150721", "liu he zhen"),  # 六合 lu he only in Nanjing
        ("六合区", "320116", "lu he qu"),
        ("六安市", None, "lu an shi"),  # regional entries only: read as the place
        ("东涌镇", "440115", "dong chong zhen"),
        ("涌泉镇", "330000", "yong quan zhen"),
        ("朝阳镇", "1407", "chao yang zhen"),
        ("朝霞街道", "1201", "zhao xia jie dao"),  # the word 朝霞 keeps zhāo
        ("萝卜村", None, "luo bo cun"),
        ("十里堡镇", "110105", "shi li pu zhen"),
        ("解家沟镇", "610830", "xie jia gou zhen"),
    ],
)
def test_regional_and_phrase_readings(name: str, code: str | None, reading: str) -> None:
    assert name_pinyin(name, code) == reading


def test_lexicon_entries_are_sourced_and_not_duplicated() -> None:
    entries = place_readings()
    keys = [(e.text, e.regions) for e in entries]
    assert len(keys) == len(set(keys))
    assert all(e.source for e in entries)
    # every entry changes something pypinyin reads otherwise, in at least one region
    for e in entries:
        code = e.regions[0] if e.regions else None
        assert name_pinyin(e.text, code) == " ".join(e.syllables)


def test_bad_lexicon_file_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "readings.csv"
    bad.write_text("text,reading,regions,source,note\n长治,chang,,XH7,\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"音节|syllable"):
        place_readings(bad)
    bad.write_text("text,reading,regions,source,note\n长,chang,,,\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"出处|source"):
        place_readings(bad)


def test_homophone_check_uses_place_readings() -> None:
    # 都昌村 (du chang) and 杜昌村 in one town are homophones only with the place reading of 都
    t = pd.DataFrame(
        {
            "code": ["44", "4401", "440101", "440101001", "440101001201", "440101001202"],
            "name": ["广东省", "广州市", "甲区", "甲街道", "都昌村", "杜昌村"],
            "level": ["province", "city", "county", "town", "village", "village"],
        }
    )
    f = check_names(t, checks=["homophone"])
    town = f[f["scope"] == "town"]
    assert set(town["code"]) == {"440101001201", "440101001202"}
