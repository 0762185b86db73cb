"""On-disk cache of the gazetteer index: its key, its folder of ``.npy`` arrays, save and read.

:func:`geo_mz.names.load_index` builds an index once and keeps it here; later loads
memory-map the arrays (``allow_pickle=False``) and decode only the strings a search returns.
The key (:func:`index_cache_key`) covers the data files and the code of the gazetteer modules,
so changed data or code never reads a stale cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from geo_mz.core.data import default_cache_dir
from geo_mz.names.index import AUX_ARRAYS, LEVELS, GazetteerIndex, StringTable, index_tables
from geo_mz.names.pinyin import CHAR_TOKENS, divergent_phrases, lexicon_digest, seed_memos

__all__ = ["INDEX_CACHE_FORMAT", "default_cache_dir", "index_cache_key", "index_cache_path"]

#: Bumped whenever the layout of the cache file changes.
INDEX_CACHE_FORMAT = 1
_DATA_STEMS = ("provinces", "cities", "areas", "streets", "villages")
_STRING_COLUMNS = ("code", "name", "full_name", "pinyin", "syllables", "initials")
_KEEP_CACHES = 4
#: Modules whose source goes into the cache key: all of the gazetteer's code, so that any change
#: to it builds the index anew.
_KEY_MODULES = (
    "gazetteer",
    "cache",
    "index",
    "pinyin",
    "search_tiers",
)


def _data_files(folder: Path) -> list[Path]:
    out = []
    for stem in _DATA_STEMS:
        for suffix in (".csv", ".csv.gz"):
            path = folder / f"{stem}{suffix}"
            if path.exists():
                out.append(path)
                break
        else:
            raise FileNotFoundError(f"{folder} has no {stem}.csv or {stem}.csv.gz")
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def index_cache_key(folder: str | Path) -> str:
    """Cache key of the index of a data folder.

    Parameters
    ----------
    folder : str or Path
        Folder with the five division tables (see :func:`load_gazetteer`).

    Returns
    -------
    str
        sha256 (hex) over :data:`INDEX_CACHE_FORMAT`, the geo_mz version, the sha256 of the
        source of each gazetteer module (``geo_mz/gazetteer*.py``), the pypinyin version and
        the place-name reading lexicon (readings depend on them) and the name and sha256 of
        each data file.  Any change to one of them gives a new key.

    Raises
    ------
    FileNotFoundError
        If one of the five tables is missing.
    """
    from importlib.metadata import PackageNotFoundError, version

    import geo_mz

    try:
        pypinyin_version = version("pypinyin")
    except PackageNotFoundError:  # pragma: no cover - pypinyin is a dependency
        pypinyin_version = "?"
    parts = [
        f"format={INDEX_CACHE_FORMAT}",
        f"geo_mz={geo_mz.__version__}",
        *(f"module={m}:{_sha256(Path(__file__).with_name(f'{m}.py'))}" for m in _KEY_MODULES),
        f"pypinyin={pypinyin_version}",
        f"place_readings={lexicon_digest()}",
    ]
    parts += [f"{p.name}={_sha256(p)}" for p in _data_files(Path(folder))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def save_cache(path: Path, index: GazetteerIndex, meta: dict[str, Any]) -> None:
    """Write the index as a folder of ``.npy`` files (renamed into place when complete)."""
    aux = index_tables(index)
    arrays: dict[str, np.ndarray] = {"level_rank": np.asarray(index.level_rank)}
    packed = {
        "divergent": StringTable.pack(sorted(divergent_phrases())),
        "token_chars": StringTable.pack(list(CHAR_TOKENS)),
        "token_values": StringTable.pack(list(CHAR_TOKENS.values())),
    }
    for col in _STRING_COLUMNS:
        raw = index._raw(col)
        packed[col] = raw if isinstance(raw, StringTable) else StringTable.pack(raw.tolist())
    newline = []
    for key, st in packed.items():
        arrays[f"s_{key}"] = np.asarray(st.buf)
        arrays[f"o_{key}"] = np.asarray(st.off)
        if st.has_newline:
            newline.append(key)
    for key in AUX_ARRAYS:
        arrays[f"a_{key}"] = np.asarray(aux[key])
    meta = {**meta, "has_newline": newline, "arrays": sorted(arrays)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for key, arr in arrays.items():
            np.save(tmp / f"{key}.npy", arr, allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        try:
            os.rename(tmp, path)
        except OSError:
            if not (path / "meta.json").is_file():  # another process did not win the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    # keep the newest few caches only
    old = sorted(
        (q for q in path.parent.glob("gazetteer-*") if q.is_dir()),
        key=lambda q: q.stat().st_mtime,
    )
    for q in old[:-_KEEP_CACHES]:
        if q != path:
            shutil.rmtree(q, ignore_errors=True)


def read_cache(path: Path, key: str) -> GazetteerIndex | None:
    """Read the index stored at ``path``; None when it is missing, stale or unreadable."""
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        if meta.get("key") != key or meta.get("format") != INDEX_CACHE_FORMAT:
            return None
        arrays = {
            k: np.load(path / f"{k}.npy", mmap_mode="r", allow_pickle=False) for k in meta["arrays"]
        }
        newline = set(meta.get("has_newline", []))
        strings = {
            k[2:]: StringTable(arrays[k], arrays[f"o_{k[2:]}"], has_newline=k[2:] in newline)
            for k in arrays
            if k.startswith("s_")
        }
        n = int(meta["n"])
        level_rank = np.asarray(arrays["level_rank"])
        if len(level_rank) != n or any(len(strings[c]) != n for c in _STRING_COLUMNS):
            return None
        aux = {k: arrays[f"a_{k}"] for k in AUX_ARRAYS}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    levels = np.empty(len(LEVELS), dtype=object)
    levels[:] = LEVELS
    index = GazetteerIndex(
        code=strings["code"],
        name=strings["name"],
        full_name=strings["full_name"],
        level=levels[level_rank],
        level_rank=level_rank,
        pinyin=strings["pinyin"],
        syllables=strings["syllables"],
        initials=strings["initials"],
    )
    index._aux.update(aux, n=n)
    seed_memos(
        lambda: strings["divergent"].materialize().tolist(),
        strings["token_chars"].materialize().tolist(),
        strings["token_values"].materialize().tolist(),
    )
    return index


def default_folder(folder: str | Path | None) -> Path:
    if folder is None:
        from geo_mz.core.data import sample_dir

        return sample_dir()
    return Path(folder)


def index_cache_path(folder: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """Return the folder where :func:`load_index` keeps (or would keep) the index of ``folder``.

    Parameters
    ----------
    folder : str or Path, optional
        Data folder; default the shipped ``layers/sample``.
    cache_dir : str or Path, optional
        Cache folder; default :func:`geo_mz.core.default_cache_dir`.

    Returns
    -------
    pathlib.Path
        ``<cache_dir>/gazetteer-<first 24 hex digits of the key>``; it exists once built.

    Raises
    ------
    FileNotFoundError
        If one of the five tables is missing.
    """
    key = index_cache_key(default_folder(folder))
    return Path(cache_dir or default_cache_dir()) / f"gazetteer-{key[:24]}"
