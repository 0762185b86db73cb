"""Delivery-time targets and settings of the relief audit (3 h / 5 h and the national hours).

A :class:`Target` is one store level with its hours ("the town store within 3 h"); the national
guidance is the built-in default (:data:`NATIONAL_TARGETS`, STANDARDS.md §C: county 6 h, city
8 h, province 10 h, SOURCED), the Pengjiang district plan's 5 h / 3 h is
:data:`PENGJIANG_TARGETS`, and a workspace may carry its own in its metadata key
``relief_targets`` (:func:`targets_to_json`, :func:`targets_from_json`,
:func:`workspace_targets`). :class:`ReliefSettings` holds the audit's other options and
:class:`ReliefError` is what every audit step raises.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from geo_mz.core.errors import GeoMzError
from geo_mz.network.graph import WALK_SPEED_KMH

Match = Literal["own", "any"]

_SRC_NATIONAL = (
    "国家防灾减灾救灾委员会办公室《关于进一步加强应急抢险救灾物资保障体系和能力建设的指导意见》"
    "(2024): county ≤ 6 h, city ≤ 8 h, province ≤ 10 h (STANDARDS.md §C, SOURCED)"
)
_SRC_PENGJIANG = (
    "《江门市蓬江区“大民政”综合保障体系建设“十三五”规划》(2019) 二(三)4(3): 区级 5 h、"
    "镇(街)级 3 h (STANDARDS.md §C, SOURCED local plan)"
)
#: Basic needs of the affected met within 10 h. 《"十四五"国家综合防灾减灾规划》, SOURCED.
BASIC_NEEDS_H = 10.0


class ReliefError(GeoMzError, ValueError):
    """Relief inputs are unusable; the message names the layer, row and field."""


@dataclass(frozen=True)
class Target:
    """One delivery-time target: stores of ``level`` reach their points within ``hours``.

    ``match="own"`` checks each point against the store(s) of that level serving its own area
    (store ``adcode`` a prefix of the point's ``adcode``); ``"any"`` against the nearest store of
    that level. ``source`` says where the number comes from.
    """

    level: str
    hours: float
    match: Match = "own"
    source: str = ""

    @property
    def minutes(self) -> float:
        """The target in minutes."""
        return float(self.hours) * 60.0

    @property
    def key(self) -> str:
        """Short name used in columns and labels, e.g. ``township_3h``."""
        return f"{self.level}_{self.hours:g}h"


#: National default (no township figure exists nationally; towns get the local plan's).
NATIONAL_TARGETS: tuple[Target, ...] = (
    Target("county", 6.0, "own", _SRC_NATIONAL),
    Target("city", 8.0, "own", _SRC_NATIONAL),
    Target("province", 10.0, "own", _SRC_NATIONAL),
)
#: The Pengjiang district plan: district store 5 h, town stores 3 h.
PENGJIANG_TARGETS: tuple[Target, ...] = (
    Target("county", 5.0, "own", _SRC_PENGJIANG),
    Target("township", 3.0, "own", _SRC_PENGJIANG),
)


def targets_to_json(targets: Sequence[Target]) -> str:
    """Serialise targets for a workspace's metadata (key ``relief_targets``)."""
    return json.dumps(
        [
            {"level": t.level, "hours": t.hours, "match": t.match, "source": t.source}
            for t in targets
        ],
        ensure_ascii=False,
    )


def targets_from_json(text: str) -> tuple[Target, ...]:
    """Parse targets written by :func:`targets_to_json` (or by hand), checking every entry."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReliefError(f"relief_targets is not valid JSON: {exc}") from exc
    if not isinstance(items, list) or not items:
        raise ReliefError("relief_targets must be a non-empty JSON list of targets")
    out, problems = [], []
    for k, it in enumerate(items, start=1):
        if not isinstance(it, dict) or "level" not in it or "hours" not in it:
            problems.append(f"target {k}: needs 'level' and 'hours'")
            continue
        hours = it["hours"]
        if not isinstance(hours, int | float) or not hours > 0:
            problems.append(f"target {k}: 'hours' must be a number > 0, got {hours!r}")
            continue
        match = it.get("match", "own")
        if match not in ("own", "any"):
            problems.append(f"target {k}: 'match' must be 'own' or 'any', got {match!r}")
            continue
        out.append(Target(str(it["level"]), float(hours), match, str(it.get("source", ""))))
    if problems:
        raise ReliefError("relief_targets has problems:\n  - " + "\n  - ".join(problems))
    return tuple(out)


def workspace_targets(metadata: Mapping[str, Any]) -> tuple[Target, ...]:
    """Read the workspace's targets (metadata ``relief_targets``), else the national ones."""
    text = metadata.get("relief_targets")
    return targets_from_json(str(text)) if text else NATIONAL_TARGETS


@dataclass(frozen=True)
class ReliefSettings:
    """Options of the relief audit; every default names its source.

    Attributes
    ----------
    targets
        Delivery targets (:data:`NATIONAL_TARGETS` by default; a workspace may carry its own).
    dispatch_prep_min
        Loading and dispatch after the order, 30 min (local choice: no figure was found).
    disaster_factor
        Truck speeds × 0.6 on disaster-damaged roads (STANDARDS.md §C, assumption, UNSOURCED).
    drive_speeds_kmh
        Per-class planning speeds over ``network.DRIVE_SPEEDS_KMH`` (JTG B01-2014, UNSOURCED).
    last_leg_kmh
        Speed of the straight last leg between a point and its road, 4 km/h: on foot, the
        conservative choice (DERIVED walking speed, STANDARDS.md §B).
    max_snap_m
        Points farther from every road node are flagged (kept, with their long last leg).
    basic_needs_h
        All affected people's basic needs met within 10 h (十四五 plan, SOURCED): a KPI line.
    """

    targets: tuple[Target, ...] = NATIONAL_TARGETS
    dispatch_prep_min: float = 30.0
    disaster_factor: float = 0.6
    drive_speeds_kmh: Mapping[str, float | None] | None = None
    last_leg_kmh: float = WALK_SPEED_KMH
    max_snap_m: float = 2000.0
    basic_needs_h: float = BASIC_NEEDS_H


__all__ = [
    "BASIC_NEEDS_H",
    "NATIONAL_TARGETS",
    "PENGJIANG_TARGETS",
    "ReliefError",
    "ReliefSettings",
    "Target",
    "targets_from_json",
    "targets_to_json",
    "workspace_targets",
]
