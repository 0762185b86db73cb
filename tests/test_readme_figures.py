"""The README's figures about shipped data agree with that data (issue 18).

Each test finds a figure where the README quotes it (a pattern around the number, so a reworded
sentence fails loudly instead of passing unchecked) and compares it with what the repository
ships: the national division tables in ``layers/sample/``, the sample's real names, the demo's
recorded fingerprint (row counts of every layer ``geo-mz demo`` writes; ``test_demo.py`` checks
that fingerprint against a fresh run) and the benchmark table of "How it scales", whose prose
must say what its own rows say.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "layers" / "sample"
README = (ROOT / "README.md").read_text(encoding="utf-8")
#: The README as one line: figures are often split over two lines of prose.
FLAT = re.sub(r"\s+", " ", README)
NUM = r"(\d[\d,]*(?:\.\d+)?)"


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def quoted(pattern: str) -> list[str]:
    """The groups of the one place ``pattern`` matches in the README (whitespace-normalised)."""
    found = re.findall(pattern, FLAT)
    assert len(found) == 1, f"README: {pattern!r} found {len(found)} times, expected once"
    return list(found[0]) if isinstance(found[0], tuple) else [found[0]]


def _rows(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1  # less the header


def _fingerprint_rows(layer: str) -> int:
    fp = json.loads((ROOT / "tests" / "data" / "demo_fingerprint.json").read_text())
    return int(fp[f"pengjiang.gpkg:{layer}"]["rows"])


def _interval(text: str) -> tuple[float, float]:
    """The values a figure printed as ``text`` can stand for (half a unit of its last digit)."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    half = 0.5 * 10.0**-decimals
    return _num(text) - half, _num(text) + half


def _consistent(ratio: str, num: str, den: str) -> bool:
    """Whether the quoted ``ratio`` can be ``num / den`` given the rounding of all three."""
    (r0, r1), (n0, n1), (d0, d1) = _interval(ratio), _interval(num), _interval(den)
    return n0 / d1 <= r1 and n1 / d0 >= r0


# --- the national names and the sample's real names -------------------------------------------


def test_national_names_count_is_the_shipped_tables():
    (figure,) = quoted(r"The national names \(([^:]+):")
    tables = ["provinces.csv", "cities.csv", "areas.csv", "streets.csv", "villages.csv.gz"]
    shipped = sum(_rows(SAMPLE / t) for t in tables)
    assert shipped == 665_276  # 31 + 342 + 2,978 + 41,352 + 620,573
    # an exact count, not "about": the tables are shipped, so the number is known
    assert figure == f"{shipped:,}", f"README says {figure!r}, layers/sample/ holds {shipped:,}"


def test_sample_towns_and_villages_are_the_real_lists():
    towns, villages = quoted(r"real names and codes of the (\d+) towns and (\d+) villages")
    assert int(towns) == _rows(SAMPLE / "pengjiang_streets.csv") == 6
    assert int(villages) == _rows(SAMPLE / "pengjiang_villages.csv") == 139
    # the sample's place names are one per town and village
    assert _fingerprint_rows("place_names") == int(towns) + int(villages)


def test_sample_counts_match_the_demo_outputs():
    from geo_mz.datasets.pengjiang import POP_60PLUS

    (shelters,) = quoted(r"elder-care facilities, (\d+) shelters")
    assert int(shelters) == _fingerprint_rows("shelters")
    (roads,) = quoted(r"every 蓬江 town part read all ([\d,]+) roads")
    assert _num(roads) == _fingerprint_rows("roads")
    (aged,) = quoted(r"\(([\d,]+) aged 60\+ as the district plan states\)")
    assert _num(aged) == POP_60PLUS
    (towns,) = quoted(r"\| 蓬江 coverage, (\d+) towns \|")
    assert int(towns) == _rows(SAMPLE / "pengjiang_streets.csv")


# --- the scaling table and the prose about it -------------------------------------------------


def _scale_table() -> list[dict[str, str]]:
    start = README.index("| setting | in-process loop |")
    lines = []
    for line in README[start:].splitlines():
        if not line.startswith("|"):
            break
        lines.append([c.strip() for c in line.strip("|").split("|")])
    head, body = lines[0], lines[2:]
    assert len(body) == 4, body
    return [dict(zip(head, row, strict=True)) for row in body]


def _rate(cell: str) -> str:
    return re.match(NUM, cell).group(1)


def _speedup(cell: str) -> str:
    return re.search(r"\(([\d.]+)×\)", cell).group(1)


def _part_times(row: dict[str, str]) -> tuple[float, float]:
    cell = row["per-part time in workers vs in-process (1 w, 2 w)"]
    one, two = re.fullmatch(r"([\d.]+)×, ([\d.]+)×", cell).groups()
    return float(one), float(two)


def test_scale_table_speedups_follow_from_its_rates():
    for row in _scale_table():
        base, two = _rate(row["in-process loop"]), _rate(row["2 workers"])
        speed = _speedup(row["2 workers"])
        assert _consistent(speed, two, base), (row["setting"], speed, two, base)


def test_per_part_time_ranges_in_the_prose_are_the_tables():
    rows = _scale_table()
    one = [_part_times(r)[0] for r in rows]
    two = [_part_times(r)[1] for r in rows]
    lo1, hi1, lo2, hi2 = quoted(
        r"\(([\d.]+)–([\d.]+)× at one worker here; ([\d.]+)–([\d.]+)× at two workers"
    )
    assert (float(lo1), float(hi1)) == (min(one), max(one))
    assert (float(lo2), float(hi2)) == (min(two), max(two))


def test_store_speedups_in_the_prose_are_the_tables():
    rows = {r["setting"].split(" (")[0].split(",")[0]: r for r in _scale_table()}
    gpkg, pg = rows["Guangdong coverage"], rows["the same on PostGIS"]
    (gpkg_quoted,) = quoted(r"already the limit at two workers \(([\d.]+)×\)")
    (pg_quoted,) = quoted(r"where each worker writes its own parts \(([\d.]+)× here")
    assert gpkg_quoted == _speedup(gpkg["2 workers"])
    assert pg_quoted == _speedup(pg["2 workers"])


def test_whole_run_ratios_follow_from_the_table():
    rows = _scale_table()
    by = {r["setting"].split(",")[0]: r for r in rows}
    # Guangdong: 123 county parts at the in-process rate against one run over the province
    n, ratio, whole = quoted(r"the (\d+) Guangdong county parts take ([\d.]+)× the ([\d.]+) s")
    rate = _rate(by["Guangdong coverage"]["in-process loop"])
    assert f"{n} generated counties" in by["Guangdong coverage"]["setting"]
    lo, hi = _interval(rate)
    wall = (int(n) * 60 / hi, int(n) * 60 / lo)
    (r0, r1), (w0, w1) = _interval(ratio), _interval(whole)
    assert wall[0] / w1 <= r1 and wall[1] / w0 >= r0, (ratio, wall, whole)
    # national QA: 31 provinces at the in-process rate against one qa() of the nation
    ratio, whole = quoted(
        r"national QA by province ([\d.]+)× one `qa\(\)` of the whole nation \((\d+) s"
    )
    qa = by["national boundary QA"]
    provinces = int(re.search(r"(\d+) provinces", qa["setting"]).group(1))
    lo, hi = _interval(_rate(qa["in-process loop"]))
    wall = (provinces * 60 / hi, provinces * 60 / lo)
    (r0, r1), (w0, w1) = _interval(ratio), _interval(whole)
    assert wall[0] / w1 <= r1 and wall[1] / w0 >= r0, (ratio, wall, whole)
