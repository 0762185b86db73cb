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


# --- the scaling table and the prose about it -------------------------------------------------


def _scale_table() -> list[dict[str, str]]:
    start = README.index("| coverage by county | wall s |")
    lines = []
    for line in README[start:].splitlines():
        if not line.startswith("|"):
            break
        lines.append([c.strip() for c in line.strip("|").split("|")])
    head, body = lines[0], lines[2:]
    assert len(body) == 4, body
    return [dict(zip(head, row, strict=True)) for row in body]


def _lead(cell: str) -> str:
    return re.match(NUM, cell).group(1)


VS = "vs the whole area in one process"


def test_scale_table_rows_follow_from_their_times():
    (counties,) = quoted(r"Guangdong, (\d+) generated counties")
    rows = _scale_table()
    whole = rows[0]
    for row in rows:
        # s per county = wall / counties, and the ratio = s per county / the whole's
        assert _consistent(_lead(row["s per county"]), _lead(row["wall s"]), counties), row
        assert _consistent(_lead(row[VS]), _lead(row["s per county"]),
                           _lead(whole["s per county"])), row  # fmt: skip
    one, two = rows[2], rows[3]
    speed = re.search(r"\*\*([\d.]+)×\*\*", two[VS]).group(1)
    assert _consistent(speed, _lead(one["wall s"]), _lead(two["wall s"]))


def test_per_part_cost_range_in_the_prose_is_the_tables():
    parts = [_num(_lead(r[VS])) for r in _scale_table()[1:]]
    lo, hi = quoted(r"its share of the whole \(([\d.]+)–([\d.]+)× here\)")
    assert (float(lo), float(hi)) == (min(parts), max(parts))
