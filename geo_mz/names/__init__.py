"""Place names (地名): the national gazetteer and the standardisation checks.

The national gazetteer (search in 汉字, pinyin, initials, fuzzy), and the checks of
proposed and existing names against the 2022 地名管理条例 and the 不规范地名 rules (大、洋、怪、重).
"""

from geo_mz.names.cache import (
    INDEX_CACHE_FORMAT,
    index_cache_key,
    index_cache_path,
)
from geo_mz.names.check import (
    FINDING_COLUMNS,
    check_names,
)
from geo_mz.names.class_check import check_class_names, check_class_proposal
from geo_mz.names.classes import (
    NAME_CLASSES,
    ClassRules,
    Lexicon,
    NameClass,
    class_rules_path,
    load_class_rules,
)
from geo_mz.names.gazetteer import (
    load_gazetteer,
    load_index,
    search,
    search_scan,
)
from geo_mz.names.index import (
    LEVELS,
    GazetteerIndex,
    build_index,
    index_frame,
    subtree,
)
from geo_mz.names.pinyin import (
    PlaceReading,
    name_pinyin,
    names_pinyin,
    place_readings,
)
from geo_mz.names.proposal import (
    ProposalResult,
    Reason,
    check_proposal,
)
from geo_mz.names.report import (
    check_label,
    county_summary,
    report_tables,
)
from geo_mz.names.rules import (
    CHECKS,
    CheckSpec,
    NamesError,
    ParsedName,
    Rules,
    TermList,
    load_rules,
    parse_name,
    rules_path,
)
from geo_mz.names.search_tiers import (
    FUZZY_BUDGET,
    FUZZY_CUTOFF,
    FUZZY_SCORED,
    search_arrays,
)

__all__ = [
    "CHECKS",
    "FINDING_COLUMNS",
    "FUZZY_BUDGET",
    "FUZZY_CUTOFF",
    "FUZZY_SCORED",
    "INDEX_CACHE_FORMAT",
    "LEVELS",
    "NAME_CLASSES",
    "CheckSpec",
    "ClassRules",
    "GazetteerIndex",
    "Lexicon",
    "NameClass",
    "NamesError",
    "ParsedName",
    "PlaceReading",
    "ProposalResult",
    "Reason",
    "Rules",
    "TermList",
    "build_index",
    "check_class_names",
    "check_class_proposal",
    "check_label",
    "check_names",
    "check_proposal",
    "class_rules_path",
    "county_summary",
    "index_cache_key",
    "index_cache_path",
    "index_frame",
    "load_class_rules",
    "load_gazetteer",
    "load_index",
    "load_rules",
    "name_pinyin",
    "names_pinyin",
    "parse_name",
    "place_readings",
    "report_tables",
    "rules_path",
    "search",
    "search_arrays",
    "search_scan",
    "subtree",
]
