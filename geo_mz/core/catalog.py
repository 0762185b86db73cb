"""The layer catalog: reads the TOML specs in ``layers/`` into typed, validated objects."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from geo_mz.core.errors import LayerSpecError

FieldType = Literal["string", "integer", "float", "boolean", "date", "datetime"]
FIELD_TYPES: tuple[str, ...] = ("string", "integer", "float", "boolean", "date", "datetime")
GEOMETRY_TYPES: tuple[str, ...] = ("Point", "LineString", "Polygon")
CodeRule = Literal["lies_in", "serves_by_level"]
CODE_RULES: tuple[str, ...] = ("lies_in", "serves_by_level")
"""Values of a layer's ``code_by_location``: how an import codes its points by where they lie.

``lies_in``: ``adcode`` is where a point lies (所在区划代码); a point takes the code of the finest
unit polygon it lies in. ``serves_by_level``: ``adcode`` is the area a point serves (所属区划代码,
relief stores); a point without one takes the code of the unit of its ``level`` it lies in.
"""

_SPACE = re.compile(r"\s+")
_TRAILING_BRACKET = re.compile(r"[(\[【][^()\[\]【】]*[)\]】]$")


def text_key(text: object) -> str:
    """Normalise a header or a value for tolerant matching.

    Full-width (全角) letters, digits and brackets become half-width and Roman-numeral
    characters become letters (Unicode NFKC: ``Ⅲ类`` → ``III类``, ``３`` → ``3``), case is
    folded and all white space is removed.

    Parameters
    ----------
    text
        Any value; non-strings are matched by their ``str()``.

    Returns
    -------
    str
    """
    return _SPACE.sub("", unicodedata.normalize("NFKC", str(text))).casefold()


def strip_unit(key: str) -> str:
    """Drop a trailing bracketed part of a normalised key: ``容纳人数(人)`` → ``容纳人数``."""
    out = key
    while True:
        shorter = _TRAILING_BRACKET.sub("", out)
        if shorter == out or not shorter:
            return out
        out = shorter


@dataclass(frozen=True)
class AllowedValue:
    """One allowed code of an enumerated field, with its labels and accepted synonyms."""

    code: str
    zh: str
    en: str
    color: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Threshold:
    """A standard's threshold on a numeric field, reported as a warning."""

    value: float
    source: str
    zh: str
    en: str


@dataclass(frozen=True)
class FieldSpec:
    """One attribute of a layer."""

    name: str
    type: FieldType
    title_zh: str
    title_en: str
    required: bool = False
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    max_field: str | None = None
    pattern: str | None = None
    values: tuple[AllowedValue, ...] = ()
    warn_min: Threshold | None = None
    warn_max: Threshold | None = None
    aliases: tuple[str, ...] = ()
    default: Any = None

    def lookup(self) -> dict[str, str]:
        """Map every accepted spelling of an allowed value, as ``text_key()``, to its code.

        Accepted: the code, the Chinese and English labels, the value's ``aliases`` in the spec,
        and the labels without a trailing bracketed note (``Ⅲ类(<10天/临时)`` → ``Ⅲ类``) where
        that is not another value's spelling. Matching ignores case, width and white space.
        """
        out: dict[str, str] = {}
        for v in self.values:
            for spelling in (v.code, v.zh, v.en, *v.aliases):
                out[text_key(spelling)] = v.code
        for v in self.values:
            for label in (v.zh, v.en):
                out.setdefault(strip_unit(text_key(label)), v.code)
        return out

    def match(self, value: Any) -> str | None:
        """Return the code ``value`` spells, or None when it is not an allowed value."""
        return self.lookup().get(text_key(value))

    def label(self, code: Any, lang: str = "zh") -> str:
        """Return the label of ``code`` in ``lang``, or the code itself when unknown."""
        for v in self.values:
            if v.code == code:
                return v.zh if lang == "zh" else v.en
        return "" if code is None else str(code)


@dataclass(frozen=True)
class LayerSpec:
    """The spec of one layer type: identity, geometry, id field, fields and symbology."""

    name: str
    version: int
    title_zh: str
    title_en: str
    geometry: str
    id_field: str
    fields: tuple[FieldSpec, ...]
    symbology: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    path: Path | None = None
    id_prefix: str = ""
    code_by_location: CodeRule | None = None

    def header_keys(self) -> dict[str, str]:
        """Map every accepted column heading, as ``text_key()``, to its field name.

        Accepted: the field's name, Chinese and English titles, its ``aliases`` in the spec, and
        the first 10 characters of a long name (shapefile DBF columns are cut to 10).
        """
        out: dict[str, str] = {}
        for f in self.fields:
            for heading in (f.name, f.title_zh, f.title_en, *f.aliases):
                out.setdefault(text_key(heading), f.name)
            if len(f.name) > 10:
                out.setdefault(text_key(f.name[:10]), f.name)
        return out

    def match_header(self, heading: str) -> str | None:
        """Field a column heading names, or None.

        Case, width and white space are ignored, and a trailing unit in brackets is
        dropped when the full heading is not known: ``可容纳人数（人）`` → ``capacity_persons``.
        """
        keys = self.header_keys()
        key = text_key(heading)
        return keys.get(key) or keys.get(strip_unit(key))

    def auto_id(self, row: int, *, width: int = 4, prefix: str | None = None) -> str:
        """Make an identifier from a 1-based file row: ``S0001`` for row 1 of a shelters list."""
        lead = self.id_prefix if prefix is None else prefix
        return f"{lead}{row:0{width}d}"

    def field(self, name: str) -> FieldSpec:
        """Return the spec of field ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise LayerSpecError(
            f"layer '{self.name}' has no field '{name}'; fields are {self.field_names}"
        )

    @property
    def field_names(self) -> list[str]:
        """Names of all fields, in spec order."""
        return [f.name for f in self.fields]

    def title(self, lang: str = "zh") -> str:
        """Title in ``lang`` (``zh`` or ``en``)."""
        return self.title_zh if lang == "zh" else self.title_en

    def color_of(self, code: Any) -> str:
        """Map colour of a feature whose symbology field has value ``code``."""
        sym = self.symbology
        default = str(sym.get("color", "#3388ff"))
        if sym.get("style") == "categorical" and sym.get("field"):
            for v in self.field(str(sym["field"])).values:
                if v.code == code and v.color:
                    return v.color
        return default


def default_catalog_dir() -> Path:
    """Directory holding the shipped layer specs.

    In a wheel the specs are packaged as ``geo_mz/_layers``; in a source checkout (editable
    install) they are the repository's ``layers/`` folder.
    """
    package = Path(__file__).resolve().parent.parent  # geo_mz/, this module is geo_mz/core/
    here = package
    for candidate in (package / "_layers", package.parent / "layers"):
        if (candidate / "elder_care.toml").is_file():
            return candidate
    raise LayerSpecError(
        f"no layer catalog found next to {here} (looked for _layers/ and ../layers/)"
    )


def _need(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise LayerSpecError(f"{where}: missing key '{key}'")
    return d[key]


def _threshold(raw: Any, where: str) -> Threshold | None:
    if raw is None:
        return None
    try:
        return Threshold(float(raw["value"]), str(raw["source"]), str(raw["zh"]), str(raw["en"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise LayerSpecError(f"{where}: threshold needs value, source, zh, en ({exc})") from exc


def _field(raw: dict[str, Any], where: str) -> FieldSpec:
    name = str(_need(raw, "name", where))
    where = f"{where}, field '{name}'"
    ftype = str(_need(raw, "type", where))
    if ftype not in FIELD_TYPES:
        raise LayerSpecError(f"{where}: type '{ftype}' is not one of {list(FIELD_TYPES)}")
    title = raw.get("title", {})
    values = tuple(
        AllowedValue(
            str(v["code"]),
            str(v["zh"]),
            str(v["en"]),
            v.get("color"),
            _strings(v.get("aliases", []), f"{where}, value '{v['code']}' aliases"),
        )
        for v in raw.get("values", [])
    )
    if values and ftype != "string":
        raise LayerSpecError(f"{where}: allowed values are only supported on string fields")
    _check_value_spellings(values, where)
    required = bool(raw.get("required", False))
    default = raw.get("default")
    if default is not None:
        _check_default(default, ftype, values, required, where)
    pattern = raw.get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise LayerSpecError(f"{where}: bad pattern {pattern!r}: {exc}") from exc
    return FieldSpec(
        name=name,
        type=ftype,  # type: ignore[arg-type]
        title_zh=str(title.get("zh", name)),
        title_en=str(title.get("en", name)),
        required=required,
        unit=raw.get("unit"),
        min=raw.get("min"),
        max=raw.get("max"),
        max_field=raw.get("max_field"),
        pattern=pattern,
        values=values,
        warn_min=_threshold(raw.get("warn_min"), where),
        warn_max=_threshold(raw.get("warn_max"), where),
        aliases=_strings(raw.get("aliases", []), f"{where}: aliases"),
        default=default,
    )


def _strings(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
        raise LayerSpecError(f"{where} must be a list of non-empty strings, not {raw!r}")
    return tuple(raw)


def _check_value_spellings(values: tuple[AllowedValue, ...], where: str) -> None:
    """Refuse a spelling (code, label or alias) that would name two different codes."""
    seen: dict[str, str] = {}
    for v in values:
        for spelling in (v.code, v.zh, v.en, *v.aliases):
            key = text_key(spelling)
            if seen.setdefault(key, v.code) != v.code:
                raise LayerSpecError(
                    f"{where}: '{spelling}' would mean both '{seen[key]}' and '{v.code}'"
                )


def _check_default(
    default: Any, ftype: str, values: tuple[AllowedValue, ...], required: bool, where: str
) -> None:
    if required:
        raise LayerSpecError(
            f"{where}: a required field cannot have a default (the user supplies it with "
            f"--default FIELD=VALUE)"
        )
    ok = {
        "string": isinstance(default, str),
        "integer": isinstance(default, int) and not isinstance(default, bool),
        "float": isinstance(default, int | float) and not isinstance(default, bool),
        "boolean": isinstance(default, bool),
    }.get(ftype, isinstance(default, str))
    if not ok:
        raise LayerSpecError(f"{where}: default {default!r} is not a {ftype}")
    if values and default not in {v.code for v in values}:
        raise LayerSpecError(f"{where}: default {default!r} is not one of the allowed codes")


def _check_headers(fields: tuple[FieldSpec, ...], where: str) -> None:
    """Refuse a field alias that is also another field's name, title or alias."""
    owner: dict[str, str] = {}
    for f in fields:
        for heading in (f.name, f.title_zh, f.title_en):
            owner.setdefault(text_key(heading), f.name)
    for f in fields:
        for alias in f.aliases:
            key = text_key(alias)
            if owner.setdefault(key, f.name) != f.name:
                raise LayerSpecError(
                    f"{where}, field '{f.name}': alias '{alias}' already names field '{owner[key]}'"
                )


def _code_rule(raw: Any, geometry: str, names: list[str], where: str) -> CodeRule | None:
    """Check a layer's ``code_by_location``: a known rule, on points with the fields it fills."""
    if raw is None:
        return None
    if raw not in CODE_RULES:
        raise LayerSpecError(
            f"{where}: code_by_location {raw!r} is not one of {list(CODE_RULES)} (see "
            "layers/README.md)"
        )
    need = ["adcode", "level"] if raw == "serves_by_level" else ["adcode"]
    missing = [n for n in need if n not in names]
    if geometry != "Point" or missing:
        raise LayerSpecError(
            f"{where}: code_by_location = {raw!r} needs a Point layer with the field(s) {need} "
            f"(geometry is {geometry!r}, missing {missing})"
        )
    return raw  # type: ignore[no-any-return]


def load_spec(path: str | Path) -> LayerSpec:
    """Read and check one layer spec file.

    Parameters
    ----------
    path
        A ``.toml`` layer spec.

    Returns
    -------
    LayerSpec

    Raises
    ------
    LayerSpecError
        If the file is not valid TOML or breaks the spec schema (see ``layers/README.md``).
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LayerSpecError(f"{path}: cannot read layer spec: {exc}") from exc
    where = str(path)
    geometry = str(_need(raw, "geometry", where))
    if geometry not in GEOMETRY_TYPES:
        raise LayerSpecError(f"{where}: geometry '{geometry}' is not one of {list(GEOMETRY_TYPES)}")
    fields = tuple(_field(f, where) for f in _need(raw, "fields", where))
    names = [f.name for f in fields]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LayerSpecError(f"{where}: duplicate field names {dupes}")
    _check_headers(fields, where)
    id_field = str(_need(raw, "id_field", where))
    if id_field not in names:
        raise LayerSpecError(f"{where}: id_field '{id_field}' is not among the fields {names}")
    for f in fields:
        if f.max_field is not None and f.max_field not in names:
            raise LayerSpecError(f"{where}, field '{f.name}': max_field '{f.max_field}' unknown")
    title = _need(raw, "title", where)
    rule = _code_rule(raw.get("code_by_location"), geometry, names, where)
    spec = LayerSpec(
        name=str(_need(raw, "name", where)),
        version=int(raw.get("version", 1)),
        title_zh=str(title.get("zh", "")),
        title_en=str(title.get("en", "")),
        geometry=geometry,
        id_field=id_field,
        fields=fields,
        symbology=dict(raw.get("symbology", {})),
        description=str(raw.get("description", "")),
        path=path,
        id_prefix=str(raw.get("id_prefix", str(_need(raw, "name", where))[:1].upper())),
        code_by_location=rule,
    )
    if spec.name != path.stem:
        raise LayerSpecError(f"{where}: name '{spec.name}' must equal the file name '{path.stem}'")
    for key in ("field", "size_field"):
        sym_field = spec.symbology.get(key)
        if sym_field is not None and sym_field not in names:
            raise LayerSpecError(f"{where}: symbology {key} '{sym_field}' is not a field")
    return spec


@cache
def _load_catalog_cached(directory: str) -> dict[str, LayerSpec]:
    specs = {}
    for p in sorted(Path(directory).glob("*.toml")):
        spec = load_spec(p)
        specs[spec.name] = spec
    if not specs:
        raise LayerSpecError(f"no layer specs (*.toml) in {directory}")
    return specs


def load_catalog(directory: str | Path | None = None) -> dict[str, LayerSpec]:
    """Load every layer spec of a catalog directory.

    Parameters
    ----------
    directory
        Folder of ``*.toml`` specs; the shipped catalog when None.

    Returns
    -------
    dict
        Layer name to :class:`LayerSpec`, sorted by name.
    """
    if directory is None:  # the shipped catalog, found once (a part's every read asks for it)
        return dict(_shipped_catalog())
    return dict(_load_catalog_cached(str(Path(directory).resolve())))


@cache
def _shipped_catalog() -> dict[str, LayerSpec]:
    return _load_catalog_cached(str(default_catalog_dir().resolve()))


def get_spec(kind: str, directory: str | Path | None = None) -> LayerSpec:
    """Return the spec of layer type ``kind``; the error lists the known kinds."""
    catalog = _shipped_catalog() if directory is None else load_catalog(directory)
    if kind not in catalog:
        raise LayerSpecError(f"unknown layer kind '{kind}'; expected one of {sorted(catalog)}")
    return catalog[kind]
