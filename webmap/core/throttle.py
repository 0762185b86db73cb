"""Failed-login throttling per user name and per client address (``POST /login``, HTTP Basic).

Failures are counted over a sliding window in a table of the users database, so every server
process sharing that file (several processes under PostGIS) sees the same counts, and a
restart does not clear them. Three counters, each refusing with 429 and ``Retry-After`` once
full, *before* the password is hashed (so a locked attacker costs no scrypt either):

- one user name from one address: ``max_failures`` (guessing one account);
- one address, any names: four times that (spraying a common password over many accounts);
- one name, any addresses: four times that (guessing one account from many machines; this
  can lock a user out for one window, the price of stopping it).

A successful login clears its name's counters (not the address's: one good account must not
let an address guess on). Behind a reverse proxy the client address is the proxy's unless the
WSGI server is told the forwarded one (e.g. werkzeug's ``ProxyFix``).
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from webmap.core.errors import ApiError

SPREAD_FACTOR = 4
"""How many more failures one address (any names) or one name (any addresses) may have than
one name from one address (local choice)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS login_failures (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (key, at);
CREATE INDEX IF NOT EXISTS login_failures_at ON login_failures (at);
"""


class TooManyAttemptsError(ApiError):
    """429: too many failed logins for this name or address; retry after ``Retry-After`` s."""

    status = 429
    code = "too_many_failed_logins"


class LoginThrottle:
    """Failed-login counters in the users database (table ``login_failures``).

    Parameters
    ----------
    path
        The users SQLite file (the table is created when missing).
    max_failures
        Failures of one name from one address within ``window_s`` that lock them.
    window_s
        Sliding window, seconds.
    """

    def __init__(self, path: str | Path, max_failures: int, window_s: float) -> None:
        self.path = Path(path)
        self.max_failures = int(max_failures)
        self.window_s = float(window_s)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=10)) as conn, conn:
            yield conn

    def _limits(self, name: str, address: str) -> dict[str, int]:
        spread = SPREAD_FACTOR * self.max_failures
        return {
            f"pair\x00{name}\x00{address}": self.max_failures,
            f"addr\x00{address}": spread,
            f"user\x00{name}": spread,
        }

    def check(self, name: str, address: str) -> None:
        """Refuse with 429 while the name, the address or the pair is locked.

        Raises
        ------
        TooManyAttemptsError
            With ``Retry-After`` (whole seconds until the window lets one more attempt in).
        """
        limits = self._limits(name, address)
        now = time.time()
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT key, at FROM login_failures WHERE at > ? AND key IN "
                f"({','.join('?' * len(limits))}) ORDER BY at",
                (now - self.window_s, *limits),
            ).fetchall()
        times: dict[str, list[float]] = {}
        for key, at in rows:
            times.setdefault(key, []).append(float(at))
        until = max(
            (ats[-limits[k]] + self.window_s for k, ats in times.items() if len(ats) >= limits[k]),
            default=None,
        )
        if until is None:
            return
        wait = max(1, math.ceil(until - now))
        raise TooManyAttemptsError(
            f"登录失败次数过多，请 {wait} 秒后再试（期间即使密码正确也会被拒绝）"
            f" / too many failed logins; try again in {wait} s (until then even the right "
            "password is refused)",
            headers={"Retry-After": str(wait)},
            extra={"retry_after_s": wait},
        )

    def failed(self, name: str, address: str) -> None:
        """Count one failed login (and forget failures older than the window)."""
        now = time.time()
        with self._connect() as conn:
            conn.execute("DELETE FROM login_failures WHERE at <= ?", (now - self.window_s,))
            conn.executemany(
                "INSERT INTO login_failures (key, at) VALUES (?, ?)",
                [(k, now) for k in self._limits(name, address)],
            )

    def succeeded(self, name: str, address: str) -> None:
        """Clear the name's counters after a successful login (a read only, when none)."""
        keys = [k for k in self._limits(name, address) if not k.startswith("addr\x00")]
        marks = ",".join("?" * len(keys))
        with self._connect() as conn:
            found = conn.execute(
                f"SELECT 1 FROM login_failures WHERE key IN ({marks}) LIMIT 1", keys
            ).fetchone()
            if found:
                conn.execute(f"DELETE FROM login_failures WHERE key IN ({marks})", keys)


__all__ = ["SPREAD_FACTOR", "LoginThrottle", "TooManyAttemptsError"]
