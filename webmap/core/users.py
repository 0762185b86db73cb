"""Users and roles in a small SQLite file, with salted scrypt password hashes (werkzeug).

Scripts authenticate with HTTP Basic on every request, and scrypt costs ~80 ms by design. So a
password that was verified is remembered for :data:`CREDENTIAL_TTL_S` seconds, in memory only,
as ``HMAC-SHA256(process key, name, password)`` together with the stored hash it matched: no
plaintext and no fast unkeyed hash of the password is kept, the key is random per process and
never leaves it, and an entry counts only while the stored hash is unchanged (a new password
or a disabled user stops it at once, in every process, because the row is read every time).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from werkzeug.security import check_password_hash, generate_password_hash

Role = Literal["viewer", "reporter", "commander", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "reporter", "commander", "admin")
"""Roles from least to most privileged; each may do everything the ones before it may."""

ROLE_LABELS: dict[str, tuple[str, str]] = {
    "viewer": ("查看员", "Viewer"),
    "reporter": ("灾害信息员", "Reporter"),
    "commander": ("指挥员", "Commander"),
    "admin": ("管理员", "Administrator"),
}

MIN_PASSWORD_CHARS = 8
"""Shortest accepted password (local choice)."""
CREDENTIAL_TTL_S = 300.0
"""Seconds a verified name and password are trusted without scrypt (local choice)."""
CREDENTIAL_CACHE_SIZE = 1_024
"""Most remembered credentials per process (the oldest are forgotten first)."""
_NAME = re.compile(r"^[\w.\-@]{1,64}$")  # \w includes CJK characters

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
)
"""


class UserError(ValueError):
    """A user name, role or password is not acceptable, or the user exists already."""


@dataclass(frozen=True)
class User:
    """An authenticated person and their role."""

    name: str
    role: Role

    def can(self, role: Role) -> bool:
        """Whether this user's role is ``role`` or higher."""
        return ROLES.index(self.role) >= ROLES.index(role)


def check_role(role: str) -> Role:
    """Return ``role`` if it is one of :data:`ROLES`, else raise :class:`UserError`."""
    if role not in ROLES:
        raise UserError(f"`role` was {role!r} but is expected to be one of {list(ROLES)}")
    return role  # type: ignore[return-value]


class UserStore:
    """The users database (created on first use).

    Parameters
    ----------
    path
        SQLite file; created with its table when missing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with self._connect() as conn:
            conn.execute(_SCHEMA)
        self._key = secrets.token_bytes(32)  # keys the credential cache; never stored
        self._verified: dict[bytes, tuple[str, float]] = {}  # HMAC -> (stored hash, expiry)
        self._lock = threading.Lock()

    def _mac(self, name: str, password: str) -> bytes:
        msg = name.encode("utf-8") + b"\0" + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def _forget(self) -> None:
        """Drop every remembered credential (keyed by HMAC, one user's cannot be singled out)."""
        with self._lock:
            self._verified.clear()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=10)) as conn, conn:
            yield conn

    def add(self, name: str, role: str, password: str, *, overwrite: bool = False) -> User:
        """Add a user (or, with ``overwrite``, reset an existing one's role and password).

        Parameters
        ----------
        name
            Login name: 1-64 letters (Chinese included), digits, ``_ . - @``.
        role
            One of :data:`ROLES`.
        password
            At least :data:`MIN_PASSWORD_CHARS` characters; stored as a salted scrypt hash.
        overwrite
            Replace an existing user of that name instead of refusing.

        Returns
        -------
        User
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise UserError(
                f"`name` was {name!r} but must be 1-64 letters, digits or _ . - @ characters"
            )
        role = check_role(role)
        if len(password) < MIN_PASSWORD_CHARS:
            raise UserError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
        digest = generate_password_hash(password, method="scrypt")
        self._forget()
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        with self._connect() as conn:
            exists = conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone()
            if exists and not overwrite:
                raise UserError(f"user {name!r} already exists (use --overwrite to reset it)")
            conn.execute(
                "INSERT OR REPLACE INTO users (name, role, password_hash, created_at, disabled) "
                "VALUES (?, ?, ?, ?, 0)",
                (name, role, digest, now),
            )
        return User(name, role)

    def get(self, name: str) -> User | None:
        """Return the enabled user called ``name``, or None."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT name, role FROM users WHERE name = ? AND disabled = 0", (name,)
            ).fetchone()
        return User(row[0], row[1]) if row and row[1] in ROLES else None

    def authenticate(self, name: str, password: str) -> User | None:
        """Return the user if ``password`` is theirs, else None (same cost either way)."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT name, role, password_hash FROM users WHERE name = ? AND disabled = 0",
                (name,),
            ).fetchone()
        if row is None:
            check_password_hash(_DUMMY_HASH, password)  # no timing hint that the name is unknown
            return None
        if row[1] not in ROLES:
            return None
        mac, now = self._mac(name, password), time.monotonic()
        with self._lock:
            hit = self._verified.get(mac)
        if hit is not None and hit[1] > now and hmac.compare_digest(hit[0], row[2]):
            return User(row[0], row[1])  # verified recently against this very hash
        if not check_password_hash(row[2], password):
            return None
        with self._lock:
            if len(self._verified) >= CREDENTIAL_CACHE_SIZE:
                for key in [k for k, (_, exp) in self._verified.items() if exp <= now]:
                    del self._verified[key]
                while len(self._verified) >= CREDENTIAL_CACHE_SIZE:
                    del self._verified[next(iter(self._verified))]  # oldest first
            self._verified[mac] = (row[2], now + CREDENTIAL_TTL_S)
        return User(row[0], row[1])

    def all(self) -> list[dict[str, object]]:
        """All users: name, role, created_at, disabled (never the hashes)."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT name, role, created_at, disabled FROM users ORDER BY name"
            ).fetchall()
        return [
            {"name": r[0], "role": r[1], "created_at": r[2], "disabled": bool(r[3])} for r in rows
        ]

    def set_disabled(self, name: str, disabled: bool = True) -> None:
        """Disable (or enable again) a user; a disabled user cannot log in or act."""
        with self._connect() as conn:
            cur = conn.execute(
                "UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name)
            )
            if cur.rowcount == 0:
                raise UserError(f"no user {name!r}")
        self._forget()


_DUMMY_HASH = (
    "scrypt:32768:8:1$geomzdummysalt00$"
    "0b1e4a4f9f0f6b0c3b6c2d5e9e6b7a1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a"
    "0b1e4a4f9f0f6b0c3b6c2d5e9e6b7a1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a"
)

__all__ = ["ROLES", "ROLE_LABELS", "Role", "User", "UserError", "UserStore", "check_role"]
