"""Delivery targets of the ``geo-mz relief`` commands: ``--target``, ``--only-targets``.

A ``--target LEVEL=HOURS`` replaces the target of its level and keeps the workspace's (or the
national) targets of the other levels; ``--only-targets`` keeps the ``--target`` levels alone.
The targets in effect are printed with their origin, and every store level that falls back to a
default (not audited, or planned against the 10 h basic-needs target) is a visible warning.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import click

from geo_mz.cli.common import note, warn


def parse_targets(given: tuple[str, ...]) -> list[Any]:
    """``LEVEL=HOURS`` options as targets; a bad level, number or repeated level is an error."""
    import math

    from geo_mz.relief.delivery_settings import STORE_LEVELS
    from geo_mz.relief.drive_audit import ReliefError, Target

    out: dict[str, Any] = {}
    for text in given:
        level, sep, hours = (x.strip() for x in text.partition("="))
        try:
            h = float(hours)
        except ValueError:
            h = math.nan
        if not sep or level not in STORE_LEVELS or not (math.isfinite(h) and h > 0):
            raise ReliefError(
                f"--target {text!r}：请写成 级别=小时数，如 township=3(级别为 "
                f"{'/'.join(STORE_LEVELS)}，小时数大于 0) / write LEVEL=HOURS, e.g. township=3, "
                f"with LEVEL one of {', '.join(STORE_LEVELS)} and HOURS > 0"
            )
        if level in out:
            raise ReliefError(
                f"--target {level} 给了两次，请只留一个 / --target {level} is given twice; keep one"
            )
        out[level] = Target(level, h, "own", "command line")
    return list(out.values())


def audit_settings(ws: Any, o: SimpleNamespace) -> Any:
    """Audit settings: the workspace's targets (else the national ones) merged with --target.

    A ``--target`` replaces the target of its level and keeps the others (its match too), new
    levels are added; ``--only-targets`` keeps the ``--target`` levels alone. The targets in
    effect are printed, with where each comes from.
    """
    from dataclasses import replace

    from geo_mz.relief.drive_audit import ReliefSettings, workspace_targets

    given = parse_targets(o.targets)
    if o.only_targets and not given:
        raise click.UsageError(
            "--only-targets 需要至少一个 --target，如 --target county=5 / --only-targets needs "
            "at least one --target, e.g. --target county=5"
        )
    own = bool(ws.metadata.get("relief_targets"))
    base = [] if o.only_targets else list(workspace_targets(ws.metadata))
    by_level = {t.level: t for t in given}
    tg = [
        replace(t, hours=by_level.pop(t.level).hours, source="command line")
        if t.level in by_level
        else t
        for t in base
    ] + list(by_level.values())
    if o.match:
        tg = [replace(t, match=o.match) for t in tg]
    where = {"command line": "命令行 command line"}
    fallback = "工作空间 workspace" if own else "国家指导意见 national guidance"
    note(
        "送达时限 / delivery targets: "
        + ", ".join(f"{t.level} {t.hours:g} h ({where.get(t.source, fallback)})" for t in tg)
    )
    s = ReliefSettings(targets=tuple(tg))
    if o.dispatch_min is not None:
        s = replace(s, dispatch_prep_min=o.dispatch_min)
    if o.disaster_factor is not None:
        s = replace(s, disaster_factor=o.disaster_factor)
    return s


def warn_levels(stores: Any, targets: Any, *, plan: bool) -> None:
    """Warn about store levels without a target and targets without a store of their level."""
    from geo_mz.relief.delivery_settings import BASIC_NEEDS_H

    have = sorted(set(stores["level"].astype(str))) if stores is not None else []
    named = [t.level for t in targets]
    for lv in (lv for lv in have if lv not in named):
        if plan:
            warn(
                f"{lv} 级储备库没有送达时限，按基本生活保障 {BASIC_NEEDS_H:g} 小时计；可用 "
                f"--target {lv}=小时数 指定 / {lv} stores have no delivery target and are planned "
                f"against the {BASIC_NEEDS_H:g} h basic-needs target; set one with "
                f"--target {lv}=HOURS"
            )
        else:
            warn(
                f"{lv} 级储备库没有送达时限，未核查；可用 --target {lv}=小时数 指定 / {lv} stores "
                f"have no delivery target and are not audited; set one with --target {lv}=HOURS"
            )
    for lv in (lv for lv in named if lv not in have):
        warn(
            f"送达时限 {lv} 没有该级别的储备库，未核查 / no relief store has level {lv}; its "
            "target is not checked"
        )


__all__ = ["audit_settings", "parse_targets", "warn_levels"]
