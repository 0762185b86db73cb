"""What each analysis needs, and whether a workspace has it: ``geo-mz info``.

The table :data:`NEEDS` is the data model of the analyses' inputs: for each analysis the layers
(and the fields or levels inside them) it reads. :func:`readiness` checks a workspace against it,
so a bureau that has just run ``geo-mz init`` sees what to import next
("coverage: roads ✓ population ✗ ...") instead of meeting a failure half-way through a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from geo_mz.core.units import unit_register

__all__ = ["NEEDS", "Need", "Readiness", "readiness"]


@dataclass(frozen=True)
class Need:
    """One input of an analysis.

    Attributes
    ----------
    layer
        Catalog layer name, or ``"units:town"`` / ``"units:village"`` for reporting units
        (polygons in ``admin_units``, or the gazetteer register with population by code).
    zh, en
        What it is, for people.
    required
        False for inputs that only refine the result.
    columns
        Columns that must hold values (e.g. ``pop_60plus``).
    hint
        The command that brings it in.
    """

    layer: str
    zh: str
    en: str
    required: bool = True
    columns: tuple[str, ...] = ()
    hint: str = ""


_ROADS = Need("roads", "道路", "roads", hint="geo-mz import roads.osm.pbf --layer roads")
_POP = Need("population", "人口(含60岁以上)", "population (with aged 60+)",
            columns=("pop_total", "pop_60plus"),
            hint="geo-mz import pop.tif --layer population --aged-share 0.2")  # fmt: skip
_TOWNS = Need("units:town", "镇街单元", "town units", required=False,
              hint="geo-mz init --units towns.gpkg, or population by 9-digit code")  # fmt: skip

#: Inputs of every analysis (command → needs). Local choice of what is required: an analysis
#: cannot run without its required inputs; optional ones add tables or refine the result.
NEEDS: dict[str, tuple[str, str, tuple[Need, ...]]] = {
    "coverage": ("15分钟养老服务圈", "15-minute elder-care circle", (
        _ROADS, _POP,
        Need("elder_care", "养老服务设施", "elder-care centres",
             hint="geo-mz import centres.xlsx --layer elder_care"),
        _TOWNS,
        Need("units:village", "村居单元", "village units", required=False,
             hint="geo-mz init --units villages.gpkg"),
    )),
    "relief audit": ("救灾物资送达", "relief delivery audit", (
        _ROADS,
        Need("relief_stores", "救灾物资储备库", "relief stores",
             hint="geo-mz import stores.csv --layer relief_stores"),
        Need("units:village", "村居(送达点)", "villages (delivery points)", required=False,
             hint="geo-mz init --units villages.gpkg, or place_names of villages"),
        Need("shelters", "避难场所", "shelters", required=False),
    )),
    "shelters": ("避难场所容量与疏散", "shelter adequacy and evacuation", (
        _ROADS, _POP,
        Need("shelters", "避难场所", "shelters", columns=("capacity_persons",),
             hint="geo-mz import shelters.csv --layer shelters --clip"),
        _TOWNS,
    )),
    "burial": ("树葬选址", "tree-burial suitability", (
        Need("roads", "道路", "roads", required=False),
        Need("landuse", "土地利用", "land use", required=False),
        Need("water", "水域", "water", required=False),
        Need("burial_sites", "树葬点", "burial sites", required=False),
    )),
    "boundaries": ("界线联检", "boundary QA and inspection", (
        Need("admin_units", "行政区划", "admin units"),
        Need("boundary_markers", "界桩", "boundary markers", required=False),
    )),
}  # fmt: skip


@dataclass
class Readiness:
    """The state of one analysis' inputs in a workspace."""

    analysis: str
    zh: str
    en: str
    present: list[tuple[Need, bool, str]] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        """True when every required input is present."""
        return all(ok for need, ok, _ in self.present if need.required)

    def line(self, lang: str = "zh") -> str:
        """One line: ``coverage 15分钟养老服务圈: 道路 roads ✓  人口 population ✗ ...``."""
        title = f"{self.zh} {self.en}" if lang == "zh" else f"{self.en} {self.zh}"
        items = []
        for need, ok, note in self.present:
            mark = "✓" if ok else ("✗" if need.required else "·")
            name = need.zh if lang == "zh" else need.en
            items.append(f"{name} {mark}" + (f" ({note})" if note else ""))
        state = ("可运行 ready" if lang == "zh" else "ready") if self.ready else (
            "缺少输入 missing input" if lang == "zh" else "missing input")  # fmt: skip
        return f"{self.analysis} {title} [{state}]: " + "  ".join(items)

    def hints(self) -> list[str]:
        """Commands that bring in the missing required inputs."""
        return [n.hint for n, ok, _ in self.present if not ok and n.required and n.hint]


def _units_state(level: str, levels: Mapping[str, int], register: pd.DataFrame | None,
                 pop_codes: int) -> tuple[bool, str]:  # fmt: skip
    if levels.get(level, 0):
        return True, f"{levels[level]} 面 polygons"
    n_reg = 0 if register is None else int((register["level"] == level).sum())
    digits = 9 if level == "town" else 12
    if n_reg and pop_codes >= digits:
        return True, f"{n_reg} 名录 register, 人口按代码 population by code"
    if n_reg:
        return False, f"{n_reg} 名录 register, 无面 no polygons"
    return False, ""


def readiness(ws: Any) -> list[Readiness]:
    """Check a workspace against :data:`NEEDS`.

    Parameters
    ----------
    ws
        A :class:`~geo_mz.core.Workspace` (or the PostGIS one).

    Returns
    -------
    list of Readiness
        One per analysis, in :data:`NEEDS` order.
    """
    stored = set(ws.layers())
    records = ws.layer_records()
    rows = dict(zip(records["layer"], pd.to_numeric(records["rows"]), strict=True))
    levels: dict[str, int] = {}
    if "admin_units" in stored:
        au = ws.read("admin_units")
        inside = au[au["in_jurisdiction"].astype("boolean").fillna(True).to_numpy(dtype=bool)]
        levels = inside["level"].value_counts().to_dict()
    pop_codes = 0
    columns: dict[str, pd.DataFrame] = {}
    for layer in {n.layer for _, _, needs in NEEDS.values() for n in needs if n.columns}:
        if layer in stored:
            columns[layer] = ws.read(layer)
    if "population" in columns and "adcode" in columns["population"]:
        codes = columns["population"]["adcode"].dropna().astype(str)
        pop_codes = int(codes.str.len().min()) if len(codes) else 0
    register = unit_register(ws.metadata)
    out = []
    for name, (zh, en, needs) in NEEDS.items():
        r = Readiness(name, zh, en)
        for need in needs:
            if need.layer.startswith("units:"):
                ok, note = _units_state(need.layer.split(":")[1], levels, register, pop_codes)
            elif need.layer not in stored or not rows.get(need.layer):
                ok, note = False, ""
            else:
                ok, note = True, f"{int(rows[need.layer])}"
                df = columns.get(need.layer)
                empty = [c for c in need.columns if df is not None and (
                    c not in df.columns or df[c].isna().all())]  # fmt: skip
                if empty:
                    ok, note = False, f"无 no {', '.join(empty)}"
            r.present.append((need, ok, note))
        out.append(r)
    return out
