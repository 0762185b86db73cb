"""Rows of a run store layer as one PostgreSQL binary ``COPY`` stream, built with numpy.

:class:`~geo_mz.scale.store_postgis.PostgisRunStore` saves a county part (≈ 3,200 rows of a
dozen columns) per transaction. Handing psycopg one Python tuple a row cost more than the
database's work; here each column becomes its typed big-endian values (``float8``, ``int8``,
``bool``), UTF-8 text or EWKB geometry, and the rows are put together by numpy scatters into
one buffer sent with a single ``copy.write``. The format is PostgreSQL's own ("Binary Format"
of COPY): a signature, per row a field count and each field's byte length (-1 for NULL) and
bytes, then a trailer. Floats go bit for bit (no text round trip); NaN is stored as NULL as
the text path did.

:func:`encode_column` says when a column cannot go this way (values that are not what the
table column's type takes, such as numbers bound for a text column): the store then sends
those rows the way it always did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo_mz.core.projection import STORAGE_CRS, geometries_to_crs
from geo_mz.scale.store_base import PARTS, SRID, frame_schema

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"


def _fixed(values: np.ndarray, missing: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Big-endian bytes of each value, (n, width), and the lengths (-1 where missing)."""
    n = len(values)
    width = values.dtype.itemsize
    raw = np.ascontiguousarray(values.astype(values.dtype.newbyteorder(">"), copy=False))
    lens = np.full(n, width, dtype=np.int64)
    if missing is not None:
        lens[missing] = -1
    return raw.view(np.uint8).reshape(n, width), lens


def _variable(items: Sequence[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """Return the present values' bytes concatenated, and each row's length (-1 where missing)."""
    lens = np.fromiter((-1 if b is None else len(b) for b in items), np.int64, len(items))
    payload = b"".join(b for b in items if b is not None)
    return np.frombuffer(payload, dtype=np.uint8), lens


def text_field(series: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """UTF-8 bytes of a text column (NULL for missing), or None if a value is not text."""
    vals = series.to_numpy(dtype=object)
    missing = pd.isna(vals) if len(vals) else np.zeros(0, dtype=bool)
    present = vals[~missing].tolist()
    try:
        joined = "".join(present)
    except TypeError:
        return None  # a number or a date in a text column: the text path says how
    lens = np.full(len(vals), -1, dtype=np.int64)
    if joined.isascii():  # one character one byte: no string encoded on its own
        lens[~missing] = np.fromiter(map(len, present), np.int64, len(present))
        data = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    else:
        encoded = [v.encode("utf-8") for v in present]
        lens[~missing] = np.fromiter(map(len, encoded), np.int64, len(encoded))
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    if len(lens) and lens[0] >= 0 and (lens == lens[0]).all():
        # Codes and ids of one width (a part's cell ids, adcodes): a fixed-width field, laid
        # out with the numbers in one block (copy_buffer then moves no byte on its own).
        return data.reshape(len(lens), int(lens[0])), lens
    return data, lens


def constant_text_field(value: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the field of the same text on every row (``run_key``, ``part``)."""
    b = np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
    return np.broadcast_to(b, (n, len(b))), np.full(n, len(b), dtype=np.int64)


def int8_field(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the field of an ``int8`` column with no missing values (``seq``)."""
    return _fixed(np.asarray(values, dtype=np.int64), None)


def null_field(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the field of NULL on every row (a layer without geometry)."""
    return np.zeros((n, 0), dtype=np.uint8), np.full(n, -1, dtype=np.int64)


def encode_column(series: pd.Series, pg_type: str) -> tuple[np.ndarray, np.ndarray] | None:
    """One column's field for the table column type ``pg_type`` (``float8``, …), or None.

    Returns
    -------
    tuple or None
        ``(data, lengths)``: data is an ``(n, width)`` uint8 array for a fixed-width type
        (and text of one width on every row) or the present values' bytes concatenated for
        other text; lengths are -1 for NULL. None when
        a value is not one the type takes as is (then the caller uses the text path).
    """
    field = _typed(series, pg_type)
    if field is None and len(series) and pd.isna(series).all():
        return null_field(len(series))  # nothing but NULL: whatever the column's type
    return field


def _typed(series: pd.Series, pg_type: str) -> tuple[np.ndarray, np.ndarray] | None:
    dtype = series.dtype
    is_np = isinstance(dtype, np.dtype)
    if pg_type == "float8":
        if is_np and dtype.kind == "f":
            values = series.to_numpy(dtype=np.float64)
            return _fixed(values, np.isnan(values))
        return None
    if pg_type == "int8":
        if is_np and dtype.kind in "iu" and dtype.itemsize <= 8 and dtype != np.uint64:
            return _fixed(series.to_numpy(dtype=np.int64), None)
        if isinstance(dtype, pd.core.arrays.integer.IntegerDtype) and dtype != pd.UInt64Dtype():
            missing = series.isna().to_numpy(dtype=bool)
            return _fixed(series.to_numpy(dtype=np.int64, na_value=0), missing)
        return None
    if pg_type == "bool":
        if is_np and dtype.kind == "b":
            return _fixed(series.to_numpy(dtype=bool), None)
        if isinstance(dtype, pd.BooleanDtype):
            missing = series.isna().to_numpy(dtype=bool)
            return _fixed(series.to_numpy(dtype=bool, na_value=False), missing)
        return None
    if pg_type == "text" and not (is_np and dtype.kind not in "OU"):
        return text_field(series)
    return None


def geometry_field(geoms: np.ndarray, srid: int) -> tuple[np.ndarray, np.ndarray]:
    """EWKB (little-endian, with the SRID) of each geometry, as shapely writes it; missing NULL.

    2D points, the common case, are laid out by numpy: byte order, type with the SRID flag,
    SRID, x, y (25 bytes), the same bytes as ``shapely.to_wkb(..., include_srid=True)``.
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    missing = shapely.is_missing(geoms)
    if n and missing.all():
        return null_field(n)
    kept = geoms[~missing]
    has_m = getattr(shapely, "has_m", None)  # shapely >= 2.1 keeps M values
    if (
        (shapely.get_type_id(kept) == 0).all()
        and not shapely.has_z(kept).any()
        and (has_m is None or not has_m(kept).any())
        and not shapely.is_empty(kept).any()
    ):
        rows = np.zeros(n, dtype=_POINT_EWKB)
        rows["order"] = 1
        rows["type"] = 1 | _EWKB_SRID_FLAG
        rows["srid"] = srid
        xy = shapely.get_coordinates(kept)
        rows["x"][~missing] = xy[:, 0]
        rows["y"][~missing] = xy[:, 1]
        lens = np.full(n, _POINT_EWKB.itemsize, dtype=np.int64)
        lens[missing] = -1
        return rows.view(np.uint8).reshape(n, _POINT_EWKB.itemsize), lens
    wkb = shapely.to_wkb(shapely.set_srid(geoms, srid), include_srid=True)
    return _variable(wkb.tolist())


_EWKB_SRID_FLAG = 0x20000000
_POINT_EWKB = np.dtype(
    [("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"), ("y", "<f8")]
)  # packed: no padding between the fields


def _blocks(fields: Sequence[tuple[np.ndarray, np.ndarray]], n: int) -> list[tuple]:
    """Lay the rows out: runs of fields of one width on every row merged into one block.

    A field whose every row has the same width (no NULL, or only NULL) is its length and
    bytes, the same width on each row: side by side such fields (and the rows' field count)
    are one ``(n, width)`` block, laid out in one step. The others stay ``(data, lengths)``.
    """
    count = np.frombuffer(np.array(len(fields), dtype=">i2").tobytes(), dtype=np.uint8)
    run: list[np.ndarray] = [np.broadcast_to(count, (n, 2))]
    out: list[tuple] = []
    for data, lens in fields:
        lens = np.asarray(lens, dtype=np.int64)
        width = data.shape[1] if data.ndim == 2 else -2
        same = (lens == width).all()
        if same or (lens < 0).all():
            prefix = lens[:1].astype(">i4").view(np.uint8)
            run.append(np.broadcast_to(prefix, (n, 4)))
            if same and width:
                run.append(data)
            continue
        if run:
            out.append(("fixed", np.hstack(run)))
            run = []
        out.append(("var", data, lens))
    if run:
        out.append(("fixed", np.hstack(run)))
    return out


def copy_buffer(fields: Sequence[tuple[np.ndarray, np.ndarray]], n: int) -> bytes:
    """Return the whole binary COPY stream of ``n`` rows of ``fields`` (in column order)."""
    if n == 0:
        return SIGNATURE + TRAILER
    blocks = _blocks(fields, n)
    if len(blocks) == 1 and blocks[0][0] == "fixed":
        # Every row the same width: the rows are the block's, one after the other.
        return SIGNATURE + np.ascontiguousarray(blocks[0][1]).tobytes() + TRAILER
    sizes = np.zeros(n, dtype=np.int64)
    for b in blocks:
        sizes += b[1].shape[1] if b[0] == "fixed" else 4 + np.maximum(b[2], 0)
    head = len(SIGNATURE)
    starts = np.full(n, head, dtype=np.int64)
    if n > 1:
        starts[1:] += np.cumsum(sizes[:-1])
    total = head + int(sizes.sum()) + len(TRAILER)
    out = np.empty(total, dtype=np.uint8)
    out[:head] = np.frombuffer(SIGNATURE, dtype=np.uint8)
    out[total - len(TRAILER) :] = np.frombuffer(TRAILER, dtype=np.uint8)
    at = starts
    for b in blocks:
        if b[0] == "fixed":
            w = b[1].shape[1]
            out[at[:, None] + np.arange(w)] = b[1]
            at = at + w
            continue
        data, lens = b[1], b[2]
        out[at[:, None] + np.arange(4)] = lens.astype(">i4").view(np.uint8).reshape(n, 4)
        at = at + 4
        present = lens > 0
        if data.ndim == 2:  # fixed width, some rows NULL
            rows = np.flatnonzero(present)
            out[at[rows, None] + np.arange(data.shape[1])] = data[rows]
        elif len(data):
            plen = lens[present]
            src = np.cumsum(plen) - plen  # where each present value starts in ``data``
            out[np.repeat(at[present] - src, plen) + np.arange(len(data))] = data
        at = at + np.maximum(lens, 0)
    return out.tobytes()


OWN_COLUMNS = {"run_key", "part", "seq", "geom"}
"""The run store's own columns of a layer table (a frame's columns of these names are not sent)."""
COLUMN_TYPES_SQL = (
    "SELECT c.relname, a.attname, t.typname FROM pg_attribute a "
    "JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_type t ON t.oid = a.atttypid "
    "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p') "
    "AND a.attnum > 0 AND NOT a.attisdropped"
)
"""Per table of a save, its columns and their types (pg_catalog: index lookups)."""
MARK_SQL = (
    "INSERT INTO {} (run_key, part, status, error, rows, seconds, worker, "
    "finished_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (run_key, part) DO UPDATE SET status = EXCLUDED.status, "
    "error = EXCLUDED.error, rows = EXCLUDED.rows, seconds = EXCLUDED.seconds, "
    "worker = EXCLUDED.worker, finished_at = EXCLUDED.finished_at"
)
"""A part's mark (its row of the parts table), replaced by a rerun."""


def geometry_column(frame: pd.DataFrame) -> Any:
    """Return the geometry column kept with the rows, or None (as storable_rows decides)."""
    if isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame.columns:
        return frame.geometry.name
    return None


def needed_columns(frame: pd.DataFrame) -> dict[str, str]:
    """Return the columns (to kind) a part's rows need in their table; none if it has no rows.

    The types of an empty frame say nothing (a text column of no rows reads as ``float``).
    """
    return frame_schema(frame) if len(frame) else {}  # the geometry column is left out


def takes_rows(need: Mapping[str, str], have: Mapping[str, str]) -> bool:
    """Whether a table with columns ``have`` takes rows needing ``need`` (``needed_columns``)."""
    for col, kind in need.items():
        typ = have.get(col)
        if typ is None or (kind == "string" and typ != "text"):
            return False
    return True


def same_types(
    frame: pd.DataFrame, used: Mapping[str, str], have: Mapping[str, str] | None
) -> bool:
    """Whether the table's columns (``have``) are those the frame's stream was typed with."""
    if have is None:
        return False
    geom = geometry_column(frame)
    cols = [str(c) for c in frame.columns if c != geom and c not in OWN_COLUMNS]
    return all(c in have and have[c] == used.get(c) for c in cols)


def layer_stream(
    schema: str,
    table: str,
    frame: pd.DataFrame,
    types: Mapping[str, str],
    run_key: str,
    part: str,
) -> tuple[Any, bytes] | None:
    """Return a layer's binary COPY statement and stream, or None (a value for the text way).

    The stream's columns are typed as ``types`` says (the table's column types): ``run_key``,
    ``part``, ``seq``, the frame's columns, ``geom`` (EPSG:4490, bit for bit as
    ``storable_rows`` puts them).
    """
    from psycopg import sql

    geom = geometry_column(frame)
    cols = [c for c in frame.columns if c != geom]
    n = len(frame)
    fields = [constant_text_field(run_key, n), constant_text_field(part, n),
              int8_field(np.arange(n, dtype=np.int64))]  # fmt: skip
    for c in cols:
        field = None if c in OWN_COLUMNS else encode_column(frame[c], types.get(str(c), ""))
        if field is None:  # e.g. numbers bound for a column widened to text
            return None
        fields.append(field)
    if geom is None:
        fields.append(null_field(n))
    else:
        geoms = np.asarray(frame.geometry.values, dtype=object)
        if frame.crs is not None:
            geoms = geometries_to_crs(geoms, frame.crs, STORAGE_CRS)
        fields.append(geometry_field(geoms, SRID))
    names = ["run_key", "part", "seq", *cols, "geom"]
    stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    return stmt, copy_buffer(fields, n)


def one_query_script(
    schema: str,
    run_key: str,
    part: str,
    tables: Sequence[str],
    mark: Sequence[Any],
    copies: Sequence[Any],
) -> Any:
    """Return a part's whole save as one simple query (a ``psycopg.sql.Composed``).

    ``BEGIN``; the part's old rows deleted from each of ``tables``; the tables' columns
    (:data:`COLUMN_TYPES_SQL`); the part's ``mark`` (:data:`MARK_SQL`, values in column
    order); the ``copies``' ``COPY ... FROM STDIN`` statements (as :func:`layer_stream` gives
    them); ``COMMIT``. :func:`run_copy_script` runs it.
    """
    from psycopg import sql

    lit = sql.Literal
    stmts = [sql.SQL("BEGIN")]
    stmts += [
        sql.SQL("DELETE FROM {} WHERE run_key = {} AND part = {}").format(
            sql.Identifier(schema, t), lit(run_key), lit(part)
        )
        for t in tables
    ]
    stmts.append(
        sql.SQL(COLUMN_TYPES_SQL.replace("%s", "{}")).format(lit(schema), lit(list(tables)))
    )
    stmts.append(
        sql.SQL(MARK_SQL.replace("%s", "{}")).format(
            sql.Identifier(schema, PARTS),
            *(lit(_plain(v)) for v in mark),
        )
    )
    stmts += list(copies)
    stmts.append(sql.SQL("COMMIT"))
    return sql.SQL("; ").join(stmts)


def _next_result(pg: Any) -> Any:
    """``pg.get_result()``, waiting for the server in ``select`` (which lets go of the GIL).

    psycopg's C ``get_result`` holds the GIL while libpq blocks: a save run by a thread of
    its own (``PostgisRunStore.save_behind``) would stop the computing thread for as long as
    the server takes. Waiting here first, the other threads (the next part, Dask's own) run.
    """
    import select

    while True:
        pg.consume_input()
        if not pg.is_busy():
            return pg.get_result()
        select.select([pg.socket], [], [])


def copy_text(conn: Any, schema: str, table: str, rows: gpd.GeoDataFrame) -> None:
    """Send rows (``storable_rows``) in a text ``COPY``, row by row: values binary cannot take.

    Numbers bound for a column widened to text, datetimes: psycopg writes each value as its
    type says, as the store always did.
    """
    from psycopg import sql

    cols = [c for c in rows.columns if c != rows.geometry.name]
    geoms = rows.geometry.values
    wkb = shapely.to_wkb(shapely.set_srid(np.asarray(geoms), SRID), hex=True, include_srid=True)
    data = []
    for c in cols:
        s = rows[c]
        vals = s.astype(object).where(s.notna(), None).tolist()  # Python values, or None
        # Only an object column can hold numpy scalars (numpy's int64 is no Python int).
        data.append([_plain(v) for v in vals] if s.dtype == object else vals)
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(schema, table),
        sql.SQL(", ").join([*(sql.Identifier(c) for c in cols), sql.Identifier("geom")]),
    )
    with conn.cursor().copy(stmt) as cp:
        for row in zip(*data, wkb.tolist(), strict=True):
            cp.write_row(row)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def run_copy_script(
    conn: Any, script: bytes, stream: Callable[[int, list[tuple]], bytes | None]
) -> Any:
    """Run a simple query whose statements include ``COPY ... FROM STDIN``; return its error.

    libpq itself, on psycopg's connection (psycopg runs no COPY among other statements): the
    server runs the statements in turn and, at each COPY, waits for its rows; the client
    waits once for everything up to the first COPY, then once per COPY for its end. At the
    n-th COPY, ``stream(n, rows)`` gives its stream (``rows``: the text rows of the last
    SELECT before it) or None to abort it (the COPY fails, so nothing after it runs).

    Returns
    -------
    psycopg.pq.PGresult or None
        The first error's result (the caller rolls back and raises it); None when every
        statement ran.
    """
    from psycopg import pq

    pg = conn.pgconn
    ok = pq.ExecStatus
    rows: list[tuple] = []
    error = None
    with conn.lock:
        blocking = pg.nonblocking
        pg.nonblocking = 0  # each call waits for the server, as plain libpq does
        try:
            pg.send_query(script)  # (raises if it cannot be sent)
            at = 0
            while (res := _next_result(pg)) is not None:
                if res.status == ok.TUPLES_OK:
                    rows = [tuple(res.get_value(i, j).decode() for j in range(res.nfields))
                            for i in range(res.ntuples)]  # fmt: skip
                elif res.status == ok.COPY_IN:
                    data = stream(at, rows)
                    at += 1
                    if data is None:
                        pg.put_copy_end(b"geo_mz: the stream was refused")
                    else:
                        pg.put_copy_data(data)
                        pg.put_copy_end(None)
                elif res.status == ok.FATAL_ERROR and error is None:
                    error = res
        finally:
            pg.nonblocking = blocking
    return error


__all__ = [
    "COLUMN_TYPES_SQL",
    "MARK_SQL",
    "OWN_COLUMNS",
    "SIGNATURE",
    "TRAILER",
    "constant_text_field",
    "copy_buffer",
    "copy_text",
    "encode_column",
    "geometry_column",
    "geometry_field",
    "int8_field",
    "layer_stream",
    "needed_columns",
    "null_field",
    "one_query_script",
    "run_copy_script",
    "same_types",
    "takes_rows",
    "text_field",
]
