"""Checking names of any class (居民区, 道路, 建筑物 ...) for 大、洋、怪、重.

:func:`check_class_names` checks a table of names, :func:`check_class_proposal` one proposed
name against the existing names of its area.  The rules are those of
:func:`geo_mz.names.load_rules` and :func:`geo_mz.names.load_class_rules`; the checks themselves
are in the package-internal :mod:`geo_mz.names._class_checks`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from geo_mz.names._class_checks import run_class_checks
from geo_mz.names.classes import NAME_CLASSES, ClassRules, load_class_rules
from geo_mz.names.rules import NamesError, Rules

__all__ = ["check_class_names", "check_class_proposal"]


def check_class_names(
    table: pd.DataFrame,
    *,
    name_class: str | None = None,
    rules: Rules | None = None,
    class_rules: ClassRules | None = None,
    checks: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Check a table of place names of any class (居民区, 道路, 建筑物 ...) for 大/洋/怪/重.

    Parameters
    ----------
    table : pandas.DataFrame
        A ``name`` column; ``class`` (one of :data:`geo_mz.names.NAME_CLASSES`) unless
        ``name_class`` is given; optionally ``code`` (an id), ``county_code`` (6 digits) or
        ``city_code`` (4 digits) for the duplicate scopes (taken from ``code`` when that is a
        division code) and ``county_name``.
    name_class : str, optional
        The class of every row (overrides a ``class`` column).
    rules, class_rules : optional
        Default :func:`geo_mz.names.load_rules` and :func:`geo_mz.names.load_class_rules`.
    checks : sequence of str, optional
        Only these checks (from :data:`geo_mz.names.CHECKS`).

    Returns
    -------
    pandas.DataFrame
        One row per finding with the columns of :data:`geo_mz.names.FINDING_COLUMNS`: the
        category (``flag``: BIG 大, FOREIGN 洋, ODD 怪, DUP 重), the rule, the matched part
        (``matched``) and a suggested fix (``suggestion``); ``level`` holds the class.

    Raises
    ------
    NamesError
        If ``name`` is missing, a class or check is unknown.
    """
    return run_class_checks(
        table,
        name_class=name_class,
        rules=rules,
        class_rules=class_rules or load_class_rules(),
        checks=checks,
    )


def check_class_proposal(
    name: str,
    name_class: str,
    *,
    existing: pd.DataFrame | None = None,
    area_code: str | None = None,
    rules: Rules | None = None,
    class_rules: ClassRules | None = None,
) -> pd.DataFrame:
    """Check one proposed name of any class (居民区, 道路, 建筑物 ...) before approval.

    Parameters
    ----------
    name : str
        The proposed name.
    name_class : str
        One of :data:`geo_mz.names.NAME_CLASSES`.
    existing : pandas.DataFrame, optional
        Existing names of the area (a ``name`` column; ``class`` where the table mixes classes,
        else every row is taken to be of ``name_class``): the duplicate and homophone checks
        compare the proposal with those of its class.
    area_code : str, optional
        Division code of the county (6 digits) or city (4 digits) the name is for; it sets the
        region of the place-name readings (圩 *xu* in Guangdong).
    rules, class_rules : optional
        Default :func:`geo_mz.names.load_rules` and :func:`geo_mz.names.load_class_rules`.

    Returns
    -------
    pandas.DataFrame
        The findings of the proposal (columns of :data:`geo_mz.names.FINDING_COLUMNS`);
        ``related_names`` names the existing places of a duplicate or homophone.

    Raises
    ------
    NamesError
        If the class is unknown, the name empty, or ``existing`` lacks a ``name`` column.
    """
    if name_class not in NAME_CLASSES:
        raise NamesError(
            f"未知地名类别 / unknown class {name_class!r}; use one of {', '.join(NAME_CLASSES)}"
        )
    if not str(name).strip():
        raise NamesError("拟用名称为空 / the proposed name is empty")
    scope = (area_code or "*")[:6]
    rows = []
    if existing is not None:
        if "name" not in existing.columns:
            raise NamesError("现有地名表缺少 name 列 / the existing names lack a 'name' column")
        classes = existing["class"].astype(str) if "class" in existing else name_class
        rows.append(
            pd.DataFrame(
                {
                    "name": existing["name"].astype(str).to_numpy(),
                    "class": classes if isinstance(classes, str) else classes.to_numpy(),
                    "code": [f"existing#{k + 1}" for k in range(len(existing))],
                    "county_code": scope,
                }
            )
        )
    rows.append(
        pd.DataFrame(
            {"name": [str(name).strip()], "class": [name_class], "code": ["proposal"]}
        ).assign(county_code=scope)
    )
    table = pd.concat(rows, ignore_index=True)
    table["city_code"] = table["county_code"].str[:4]
    found = check_class_names(table, rules=rules, class_rules=class_rules)
    return found[found["code"] == "proposal"].reset_index(drop=True)
