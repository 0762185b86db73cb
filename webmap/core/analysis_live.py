"""Live ``analysis`` events: re-run the relief audit after closure edits and push the result.

After a closure or incident edit (once the analysis has been used in this process: the map
page reads it when it opens) :class:`LiveAnalysis` recomputes the scenario in a background
thread (bursts coalesce into one run) and pushes a **live-only** SSE event ``analysis`` with the
summary, or ``analysis_error`` with the error's JSON body. Such events carry no ``id:`` (they are
derived, not edits): not stored in the event log, not replayed on reconnect.

Which edits it notices: it subscribes to the process's :class:`~webmap.core.events.EventBus`, so
it hears of every committed event, this process's and (under PostGIS, via ``LISTEN``) every
other process's, and reads the new events to see whether one touched the closures or
incidents. Under PostGIS a result is also shared with the other processes
(``PostgisStore.share_live``) and theirs are relayed here (``listen_live``): a map gets its
``analysis`` events whichever process its stream is on, even one where the analysis was never
used. The same result computed in two processes goes out once; an older one never replaces a
newer (see :meth:`LiveAnalysis.offer`).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from webmap.core.errors import ApiError
from webmap.core.events import REPLAY_BATCH, EventBus
from webmap.core.layers import CLOSURES, INCIDENTS
from webmap.core.store import FeatureStore

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.25
"""Wait after a write before re-running the analysis, seconds (coalesces bursts)."""
WATCHED_LAYERS = (CLOSURES, INCIDENTS)
"""Layers whose edits can change the relief audit with closures."""


def version_key(version: Any) -> tuple[int, ...] | None:
    """Return ``"12:-:40"`` (source-layer tokens) as ``(12, -1, 40)``; None if not such text."""
    if not isinstance(version, str):
        return None
    try:
        return tuple(-1 if part == "-" else int(part) for part in version.split(":"))
    except ValueError:
        return None


class LiveAnalysis:
    """The background re-analysis and the newest live ``analysis`` event of one process.

    Parameters
    ----------
    store
        The feature store (its event log says which layers an edit touched).
    bus
        This process's event bus: heard for edits, poked for a new result.
    compute
        Returns the summary to send (raises an ``ApiError`` or any error to send
        ``analysis_error`` instead).
    in_use
        Whether the analysis has been used in this process (else edits are not re-analysed).
    failure
        Turns an unexpected error into the ``ApiError`` to send.
    """

    def __init__(
        self,
        store: FeatureStore,
        bus: EventBus,
        compute: Callable[[], dict[str, Any]],
        in_use: Callable[[], bool],
        failure: Callable[[BaseException], ApiError],
    ) -> None:
        self.store, self.bus = store, bus
        self._compute, self._in_use, self._failure = compute, in_use, failure
        self._cond = threading.Condition()
        self._dirty = False
        self._check = False  # an event was announced: see whether it touched the closures
        self._closed = False
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._live: str | None = None
        self._version: tuple[int, ...] | None = None
        self.cursor: int | None = None  # newest event looked at; set by :meth:`start_watching`
        bus.subscribe(self._announced)
        listen = getattr(store, "listen_live", None)  # PostGIS: other processes' results
        if callable(listen):
            listen(self.relay)
        # GeoPackage: results go through the journal; workers call poll_shared (see there)
        self._journal = None if callable(listen) else getattr(store, "journal", None)
        self._origin = uuid.uuid4().hex
        self._shared = self._journal.last_live_seq() if self._journal is not None else 0

    def start_watching(self) -> None:
        """Start re-running on edits: the analysis has just been used (after the bus's newest)."""
        if self.cursor is None:
            self.cursor = self.bus.latest

    def edited(self, layer: str) -> None:
        """Note a committed write in this process (saves reading the log for it)."""
        if layer in WATCHED_LAYERS and self._in_use():
            self._wake(dirty=True)

    def _announced(self) -> None:
        """Bus listener (any thread, must not block): an event was committed, maybe elsewhere."""
        if self._in_use():
            self._wake(dirty=False)

    def _wake(self, *, dirty: bool) -> None:
        with self._cond:
            if self._closed:
                return
            if dirty:
                self._dirty = True
            else:
                self._check = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._worker, name="webmap-analysis", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _touched(self) -> bool:
        """Read the events since last time; True if one changed the closures or incidents."""
        found = False
        if self.cursor is None or self.bus.latest <= self.cursor:
            return False  # a poke or a repeat: nothing new announced, no query
        while self.cursor is not None:
            events = self.store.events_since(self.cursor, limit=REPLAY_BATCH)
            for ev in events:
                self.cursor = ev.id
                found = found or ev.data.get("layer") in WATCHED_LAYERS
            if len(events) < REPLAY_BATCH:
                break
        return found

    def _worker(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._dirty or self._check or self._closed)
                if self._closed:
                    return
                check, self._check = self._check, False
            if check:
                try:
                    touched = self._touched()
                except Exception:  # e.g. the database restarting: the next event reads again
                    log.exception("读取事件日志失败 / reading the event log failed")
                    touched = False
                with self._cond:
                    self._dirty = self._dirty or touched
                    if not self._dirty:
                        continue
            with self._cond:
                # let the write's own event go out first; a burst of writes coalesces here
                self._cond.wait_for(lambda: self._closed, timeout=DEBOUNCE_S)
                self._dirty = False
            self._run_once()

    def _run_once(self) -> None:
        version = None
        try:
            data = self._compute()
            event = "analysis"
            version = version_key(data.get("version"))
        except Exception as exc:  # the open pages show it (red note, figure marked stale)
            err = exc if isinstance(exc, ApiError) else self._failure(exc)
            if not isinstance(exc, ApiError):
                log.exception("relief re-analysis failed")
            data, event = {**err.body(), "status": err.status}, "analysis_error"
        chunk = f"event: {event}\ndata: " + json.dumps(data, ensure_ascii=False) + "\n\n"
        if self.offer(chunk, version):
            share = getattr(self.store, "share_live", None)  # PostGIS: tell the others
            try:
                if callable(share):
                    share(chunk)
                elif self._journal is not None:  # GeoPackage: for the other workers, if any
                    self._journal.share_live(self._origin, chunk)
            except Exception:  # this process's maps have it; the others' miss this one
                log.exception("转发分析结果失败 / sharing the analysis result failed")

    def poll_shared(self) -> None:
        """Relay the analysis results other processes shared through a GeoPackage's journal.

        For the process that watches the journal for other workers' edits (``PRAGMA
        data_version``): call it whenever the journal changed. A no-op under PostGIS (there the
        store's listener relays) and for a store without a journal.
        """
        if self._journal is None:
            return
        for seq, origin, chunk in self._journal.live_since(self._shared):
            self._shared = seq
            if origin != self._origin:
                self.relay(chunk)

    def offer(self, chunk: str, version: tuple[int, ...] | None) -> bool:
        """Make ``chunk`` the newest analysis event and wake the streams; False if not newer.

        The same text (computed here and relayed by another process) goes out once, and a
        result whose source-layer tokens are all lower or equal to the one sent (tokens only
        grow) is dropped: a late relay never replaces a newer figure on the maps.
        """
        with self._cond:
            if chunk == self._live:
                return False
            old = self._version
            if (
                version is not None
                and old is not None
                and len(old) == len(version)
                and all(v <= o for v, o in zip(version, old, strict=True))
            ):
                return False
            self._seq += 1
            self._live, self._version = chunk, version
        self.bus.poke()
        return True

    def relay(self, chunk: str) -> None:
        """Send an analysis event computed by another server process to this one's streams.

        Parameters
        ----------
        chunk
            The event's ``text/event-stream`` text (``event: analysis`` and its ``data``).
        """
        version = None
        if chunk.startswith("event: analysis\n"):
            try:
                data = json.loads(chunk.split("data: ", 1)[1])
            except (IndexError, ValueError):
                log.warning("忽略无法解析的分析事件 / ignoring an unreadable analysis event")
                return
            version = version_key(data.get("version") if isinstance(data, dict) else None)
        self.offer(chunk, version)

    def live(self, after: int | None) -> tuple[int, list[str]]:
        """For an event stream: the newest analysis event after sequence ``after``.

        ``after=None`` starts a stream: returns the current sequence and nothing.
        """
        with self._cond:
            if after is None or self._seq <= after or self._live is None:
                return self._seq, []
            return self._seq, [self._live]

    def close(self) -> None:
        """Stop the background thread and stop listening."""
        self.bus.unsubscribe(self._announced)
        with self._cond:
            self._closed = True
            self._cond.notify_all()


__all__ = ["DEBOUNCE_S", "WATCHED_LAYERS", "LiveAnalysis", "version_key"]
