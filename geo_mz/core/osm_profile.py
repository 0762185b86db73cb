"""OSM tag profile: ``highway`` values and tags -> road class, access, one-way, speed.

One profile (:data:`OSM_PROFILE` and :func:`classify_way`) serves both OSM readers: the roads
importer :func:`geo_mz.core.osm_roads.read_osm_roads` (pyosmium) and the network reader
:func:`geo_mz.network.network_from_osm` (pyrosm, which uses the class mapping and the
``oneway``/``maxspeed`` rules). Decisions, all local choices unless a source is named:

* ``highway`` -> ``road_class`` (catalog codes of layers/roads.toml; unchanged from the
  pyrosm reader's former ``OSM_HIGHWAY_CLASSES``): ``*_link`` as its road;
  ``unclassified``/``track`` -> ``rural``; ``living_street``/``service``/``road`` ->
  ``residential``; footway, pedestrian, path, steps, corridor, cycleway, bridleway, elevator,
  trail, sidewalk, crossing -> ``footway`` (walk only). Excluded and counted: construction,
  proposed, planned, abandoned, disused, razed, platform, raceway, bus_guideway, busway, escape,
  rest_area, services, emergency_bay, via_ferrata; values absent from the profile are excluded
  as ``unknown_highway`` (each value listed in the report).
* Access: the highway value sets the ceiling (motorways are not walked, footway-class ways not
  driven); tags only restrict it, the most specific tag winning (walk: ``foot`` then
  ``access``; drive: ``motorcar``, ``motor_vehicle``, ``vehicle``, then ``access``). Denying
  values: no, private, agricultural, forestry, use_sidepath. ``access=private`` with
  ``foot=yes`` walks. A way neither walked nor driven is excluded with its reason (e.g.
  ``access=private``); ``area=yes`` is excluded (a pedestrian square is not a centre line).
* The roads layer has no access fields and ``network_from_roads`` decides access by class, so a
  way whose access differs from its class's is written with the class that gives it: walk-only
  -> ``footway``, drive-only (e.g. ``foot=no`` on an elevated 快速路) -> ``motorway``. The OSM
  value stays in ``highway``; ``walk``/``drive`` columns state the access explicitly.
* ``oneway``: yes/true/1 -> drawn direction, -1/reverse -> the piece is reversed and one-way,
  ``junction=roundabout|circular`` without ``oneway`` -> one-way; anything else two-way
  (``motorway`` does not imply one-way, as in osmnx and pyrosm).
* ``maxspeed``: the first number (``"40;60"`` -> 40), ``mph`` converted; ``none``, ``signals``,
  ``walk``, zone codes (``CN:urban``) and values outside (0, 130] fall back to the profile speed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "DENY_VALUES",
    "JTG",
    "LOCAL",
    "MAX_SPEED_KMH",
    "ONEWAY_BACKWARD",
    "ONEWAY_FORWARD",
    "OSM_PROFILE",
    "ROUNDABOUT_JUNCTIONS",
    "TAG_KEYS",
    "HighwayRule",
    "WayClass",
    "classify_way",
    "highway_classes",
    "maxspeed_kmh",
    "oneway_code",
]

JTG = "JTG B01-2014 design speed, as DRIVE_SPEEDS_KMH (UNSOURCED, recalled: STANDARDS.md §C)"
LOCAL = "local choice"


@dataclass(frozen=True)
class HighwayRule:
    """How ways of one OSM ``highway`` value become roads.

    ``road_class`` None means excluded. ``speed_kmh`` is the default driving speed when no
    usable ``maxspeed`` is tagged (None when the way is not driven); ``source`` says where the
    speed and the access come from.
    """

    road_class: str | None  #: catalog code (layers/roads.toml), None = excluded
    speed_kmh: float | None  #: default driving speed, km/h
    walk: bool  #: walking allowed unless a tag denies it
    drive: bool  #: driving allowed unless a tag denies it
    source: str  #: source of the speed / mapping


def _road(cls: str, kmh: float, *, walk: bool = True, source: str = JTG) -> HighwayRule:
    return HighwayRule(cls, kmh, walk, True, source)


_FOOT = HighwayRule("footway", None, True, False, LOCAL + ": walk only")
_OUT = HighwayRule(None, None, False, False, LOCAL + ": not a usable road, excluded")

#: OSM ``highway`` value -> rule. Speeds equal the class speeds of
#: ``geo_mz.network.graph.DRIVE_SPEEDS_KMH`` (高速 100, 一级 80, 二级 60, 三级 40, 四级 30/20), so
#: both OSM readers and a roads layer without speeds drive alike; trunk roads are walked (local
#: choice, as ``WALKABLE_CLASSES``: Chinese 快速路/国道 mostly carry sidewalks).
OSM_PROFILE: Mapping[str, HighwayRule] = MappingProxyType(
    {
        "motorway": _road("motorway", 100.0, walk=False),
        "motorway_link": _road("motorway", 100.0, walk=False, source=JTG + "; link as its road"),
        "trunk": _road("trunk", 80.0),
        "trunk_link": _road("trunk", 80.0, source=JTG + "; link as its road"),
        "primary": _road("primary", 60.0),
        "primary_link": _road("primary", 60.0, source=JTG + "; link as its road"),
        "secondary": _road("secondary", 40.0),
        "secondary_link": _road("secondary", 40.0, source=JTG + "; link as its road"),
        "tertiary": _road("tertiary", 30.0),
        "tertiary_link": _road("tertiary", 30.0, source=JTG + "; link as its road"),
        "residential": _road("residential", 20.0),
        "living_street": _road("residential", 20.0, source=LOCAL + " (residential class speed)"),
        "service": _road("residential", 20.0, source=LOCAL + " (residential class speed)"),
        "road": _road("residential", 20.0, source=LOCAL + " (unknown type: residential)"),
        "unclassified": _road("rural", 30.0),
        "track": _road("rural", 30.0, source=LOCAL + " (rural class speed; village access)"),
        "footway": _FOOT,
        "pedestrian": _FOOT,
        "path": _FOOT,
        "steps": _FOOT,
        "corridor": _FOOT,
        "cycleway": _FOOT,
        "bridleway": _FOOT,
        "elevator": _FOOT,
        "trail": _FOOT,
        "sidewalk": _FOOT,
        "crossing": _FOOT,
        "construction": _OUT,
        "proposed": _OUT,
        "planned": _OUT,
        "abandoned": _OUT,
        "disused": _OUT,
        "razed": _OUT,
        "platform": _OUT,
        "raceway": _OUT,
        "bus_guideway": _OUT,
        "busway": _OUT,
        "escape": _OUT,
        "rest_area": _OUT,
        "services": _OUT,
        "emergency_bay": _OUT,
        "via_ferrata": _OUT,
    }
)

ONEWAY_FORWARD = frozenset({"yes", "true", "1"})  #: oneway values: drawn direction only
ONEWAY_BACKWARD = frozenset({"-1", "reverse"})  #: oneway values: against the drawn direction
ROUNDABOUT_JUNCTIONS = frozenset({"roundabout", "circular"})  #: one-way unless oneway says else
#: Access values that deny a mode (see the module docstring).
DENY_VALUES = frozenset({"no", "private", "agricultural", "forestry", "use_sidepath"})
MAX_SPEED_KMH = 130.0  #: upper bound of ``speed_kmh`` in layers/roads.toml
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph)?", re.IGNORECASE)
_INT = re.compile(r"^\s*([+-]?\d+)")
_MPH_KMH = 1.609344
_WALK_KEYS = ("foot", "access")
_DRIVE_KEYS = ("motorcar", "motor_vehicle", "vehicle", "access")
#: Tags the reader looks at (everything else is ignored).
TAG_KEYS = (
    "highway",
    "area",
    "access",
    "foot",
    "motorcar",
    "motor_vehicle",
    "vehicle",
    "oneway",
    "junction",
    "maxspeed",
    "lanes",
    "bridge",
    "tunnel",
    "layer",
    "name",
    "name:zh",
)


def maxspeed_kmh(raw: object) -> float | None:
    """OSM ``maxspeed`` as km/h: the first number, ``mph`` converted; None if not a speed.

    Parameters
    ----------
    raw
        The tag value, e.g. ``"50"``, ``"30 mph"``, ``"40;60"``, ``"none"``, ``"CN:urban"``.

    Returns
    -------
    float or None
        50.0, 48.28..., 40.0; None for non-numeric values and for values <= 0.
    """
    if not isinstance(raw, str):
        return None
    m = _NUMBER.match(raw)
    if not m:
        return None
    value = float(m.group(1)) * (_MPH_KMH if m.group(2) else 1.0)
    return value if value > 0 else None


def oneway_code(oneway: object, junction: object = None) -> int:
    """Travel direction from OSM tags: 1 drawn direction only, -1 against it, 0 both.

    Parameters
    ----------
    oneway
        The ``oneway`` value (None when absent).
    junction
        The ``junction`` value: a roundabout without ``oneway`` is one-way.

    Returns
    -------
    int
    """
    ow = oneway.strip().lower() if isinstance(oneway, str) else ""
    if ow in ONEWAY_FORWARD:
        return 1
    if ow in ONEWAY_BACKWARD:
        return -1
    if ow == "" and isinstance(junction, str) and junction.lower() in ROUNDABOUT_JUNCTIONS:
        return 1
    return 0


class WayClass(NamedTuple):
    """What :func:`classify_way` decided for one way."""

    excluded: str | None  #: reason ("highway=construction", "access=private", ...), None = kept
    highway: str  #: the OSM value
    road_class: str | None  #: catalog code written (see the access rule)
    walk: bool
    drive: bool
    oneway: int  #: 1 drawn direction, -1 against it, 0 both
    speed_kmh: float  #: driving speed (NaN when not driven)
    speed_source: str  #: "maxspeed", "profile" or "" (not driven)
    lanes: int | None
    bridge: bool
    tunnel: bool
    layer: int  #: OSM layer, 0 when absent or unreadable
    name: str | None


def _first_int(raw: object) -> int | None:
    m = _INT.match(raw) if isinstance(raw, str) else None
    return int(m.group(1)) if m else None


def _decider(tags: Any, keys: tuple[str, ...]) -> tuple[str, str] | None:
    for k in keys:
        v = tags.get(k)
        if v is not None:
            return k, v
    return None


def classify_way(tags: Any) -> WayClass:
    """Apply :data:`OSM_PROFILE` and the tag rules to one way's tags.

    Parameters
    ----------
    tags
        Anything with ``.get(key)`` returning the value or None: a dict, or a pyosmium TagList.

    Returns
    -------
    WayClass
        ``excluded`` names the reason when the way is not a road for either mode.
    """
    hw = tags.get("highway") or ""
    rule = OSM_PROFILE.get(hw)

    def out(reason: str) -> WayClass:
        return WayClass(reason, hw, None, False, False, 0, np.nan, "", None, False, False, 0, None)

    if rule is None:
        return out("unknown_highway" if hw else "no_highway")
    if rule.road_class is None:
        return out(f"highway={hw}")
    if tags.get("area") == "yes":
        return out("area=yes")
    by_walk = _decider(tags, _WALK_KEYS)
    by_drive = _decider(tags, _DRIVE_KEYS)
    walk = rule.walk and not (by_walk is not None and by_walk[1] in DENY_VALUES)
    drive = rule.drive and not (by_drive is not None and by_drive[1] in DENY_VALUES)
    if not (walk or drive):
        why = [
            f"{d[0]}={d[1]}" for ok, d in ((rule.walk, by_walk), (rule.drive, by_drive)) if ok and d
        ]
        return out(";".join(dict.fromkeys(why)) or "no_access")
    cls = rule.road_class
    if walk and not drive:
        cls = "footway"
    elif drive and not walk:
        cls = "motorway"
    speed, source = np.nan, ""
    if drive:
        tagged = maxspeed_kmh(tags.get("maxspeed"))
        if tagged is not None and tagged <= MAX_SPEED_KMH:
            speed, source = tagged, "maxspeed"
        else:
            speed = rule.speed_kmh if rule.speed_kmh is not None else np.nan
            source = "profile"
    bridge, tunnel = tags.get("bridge"), tags.get("tunnel")
    return WayClass(
        None,
        hw,
        cls,
        walk,
        drive,
        oneway_code(tags.get("oneway"), tags.get("junction")),
        float(speed),
        source,
        _first_int(tags.get("lanes")),
        bridge is not None and bridge != "no",
        tunnel is not None and tunnel != "no",
        _first_int(tags.get("layer")) or 0,
        tags.get("name") or tags.get("name:zh") or None,
    )


def highway_classes() -> dict[str, str]:
    """Map every ``highway`` value the profile keeps to its catalog road class.

    Returns
    -------
    dict
        e.g. ``{"motorway_link": "motorway", "service": "residential", "steps": "footway"}``;
        excluded values (construction, ...) are absent.
    """
    return {hw: rule.road_class for hw, rule in OSM_PROFILE.items() if rule.road_class}
