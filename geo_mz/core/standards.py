"""Defaults from standards and plans, each with its source (see ../shared/STANDARDS.md).

One place for the numbers several analyses share, so they cannot drift apart. Status tags follow
STANDARDS.md: SOURCED, SECONDARY, UNSOURCED (recalled), DERIVED, or "local choice".
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

#: Beds (养老院 + 养护院) per 1,000 planned elderly: ≥ 40.
#: GB 50437-2007 (2018) §3.2.1, SOURCED (copy).
BEDS_PER_1000_MIN = 40.0
#: Nursing-type share of institutional beds: ≥ 55 % by 2025. 《"十四五"国家老龄事业发展和养老服务
#: 体系规划》, SOURCED (gov.cn).
NURSING_SHARE_MIN = 0.55
#: Kinds whose beds GB 50437 §3.2.1 counts: 敬老院, 养老院, 护理院
#: (codes of layers/elder_care.toml).
RESIDENTIAL_KINDS: tuple[str, ...] = ("township_home", "nursing_home", "care_home")

#: The 5/10/15-minute circles: GB 50180-2018 life circles (≈300 m UNSOURCED, ≈500 m and
#: 800–1,000 m SOURCED). At the elderly 3.2 km/h they are 267/533/800 m.
COVERAGE_THRESHOLDS_MIN: tuple[int, ...] = (5, 10, 15)
#: Share of the aged 60+ to cover within 15 min: 100 % urban, 95 % rural (local plan targets,
#: DESIGN.md); configurable.
TARGET_SHARE: Mapping[str, float] = MappingProxyType({"urban": 1.00, "rural": 0.95})

#: Shelter effective area per person: > 1.5 m². GB 21734-2008 §5.4, SOURCED.
SHELTER_AREA_PER_PERSON_MIN_M2 = 1.5
#: Fixed shelters hold ≥ 15 % of the planned population of their area. General code §4.2.2
#: (cabr-fire.com copy), SOURCED (value).
FIXED_SHELTER_SHARE_MIN = 0.15
