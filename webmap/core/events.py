"""Live updates: Server-Sent Events replayed from the event log and woken by a condition.

Every committed edit is an event with a monotonically increasing id in the store's event log.
A stream first replays every event after the client's ``Last-Event-ID``, then waits on this
process's :class:`EventBus`; an edit wakes all waiting streams at once, so a change reaches
every open map well within a second. The log is re-read on every wake and every keep-alive,
so nothing is lost between a replay and the wait.

That is the threaded stream (one server thread per open map), kept for WSGI servers and tests.
``geo-mz serve`` streams from an event loop instead (``webmap.core.streams``): the bus also
calls plain listeners (:meth:`EventBus.subscribe`) from whichever thread committed or was
notified (a flask worker, the PostGIS ``LISTEN`` thread), and one listener wakes the loop.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

from webmap.core.errors import BadRequestError, field_error
from webmap.core.store import Event, FeatureStore

REPLAY_BATCH = 500
"""Events read from the log per query while replaying."""
RETRY_MS = 2000
"""Reconnection delay suggested to browsers (``retry:``), in milliseconds (local choice)."""
Live = Callable[[int | None], tuple[int, list[str]]]
"""Live-only chunks after a sequence number (see :func:`stream`)."""


class EventBus:
    """Wakes this process's event streams when an event has been committed.

    Parameters
    ----------
    last_id
        The newest event id at start.
    """

    def __init__(self, last_id: int = 0) -> None:
        self._cond = threading.Condition()
        self._latest = int(last_id)
        self._closed = False
        self._pokes = 0  # wake-ups without a stored event (live-only analysis events)
        self._listeners: list[Callable[[], None]] = []

    @property
    def latest(self) -> int:
        """The newest event id this process knows of."""
        with self._cond:
            return self._latest

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (streams then end)."""
        return self._closed

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after every publish, poke and close, from the caller's thread.

        A listener must return at once and never block (e.g. ``loop.call_soon_threadsafe``).
        """
        with self._cond:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener`` (no error when it was not subscribed)."""
        with self._cond:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _tell(self) -> None:
        with self._cond:
            listeners = list(self._listeners)
        for listener in listeners:  # outside the lock: a listener may read `latest`
            listener()

    def publish(self, event_id: int) -> None:
        """Announce a committed event: wake every waiting stream."""
        with self._cond:
            self._latest = max(self._latest, int(event_id))
            self._cond.notify_all()
        self._tell()

    @property
    def pokes(self) -> int:
        """How many times :meth:`poke` was called."""
        with self._cond:
            return self._pokes

    def poke(self) -> None:
        """Wake every waiting stream for a live-only event (not in the event log)."""
        with self._cond:
            self._pokes += 1
            self._cond.notify_all()
        self._tell()

    def wait(self, after_id: int, timeout_s: float, pokes: int | None = None) -> bool:
        """Wait until an event newer than ``after_id`` exists (or a poke after ``pokes``)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (
                    self._latest > after_id
                    or self._closed
                    or (pokes is not None and self._pokes != pokes)
                ),
                timeout=timeout_s,
            )

    def close(self) -> None:
        """End all streams (server shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._tell()


def parse_last_event_id(header: str | None, since: str | None) -> int | None:
    """Return the id to replay after: ``Last-Event-ID`` header, else the ``since`` parameter."""
    raw = header if header not in (None, "") else since
    if raw in (None, ""):
        return None
    try:
        value = int(str(raw))
    except ValueError:
        value = -1
    if value < 0:
        raise BadRequestError(
            f"the last event id {raw!r} is not a non-negative whole number",
            errors=[field_error("Last-Event-ID", "bad_event_id", "0, 1, 2, ...")],
        )
    return value


def format_event(event: Event) -> str:
    """One event in the ``text/event-stream`` format (``id``, ``event``, one ``data`` line)."""
    data = json.dumps(event.data, ensure_ascii=False, allow_nan=False)
    return f"id: {event.id}\nevent: change\ndata: {data}\n\n"


def stream(
    store: FeatureStore,
    bus: EventBus,
    *,
    last_id: int | None,
    keepalive_s: float,
    max_s: float,
    clock: Callable[[], float] = time.monotonic,
    live: Live | None = None,
) -> Iterator[str]:
    """Open an event stream: replay after ``last_id``, then live events and keep-alives.

    Parameters
    ----------
    store
        Where the event log is.
    bus
        This process's wake-up signal.
    last_id
        The client's last seen event id; None to start with the next event.
    keepalive_s
        Seconds between keep-alive comments while idle.
    max_s
        Seconds after which the stream ends (the client reconnects and replays).
    clock
        Monotonic clock (for tests).
    live
        Source of live-only chunks (``webmap.core.analysis.Analysis.live``): called with the
        last sequence seen (None at the start), returns the new sequence and chunks to send.

    Returns
    -------
    Iterator of str
        Chunks of ``text/event-stream``. Where the stream starts is fixed when this is called
        (not when the server first pulls a chunk), so no event slips in between.
    """
    # The bus knows the newest announced event without a query (a reconnect storm of 1,000
    # maps would otherwise read the log 1,000 times); only an id beyond it is checked in the log.
    newest = bus.latest
    if last_id is not None and last_id > newest:
        newest = max(newest, store.last_event_id())
    reset = last_id is not None and last_id > newest
    start = newest if last_id is None or reset else last_id
    seen = live(None)[0] if live is not None else 0
    return _events(store, bus, start, reset, keepalive_s, clock() + max_s, clock, live, seen)


def _events(
    store: FeatureStore,
    bus: EventBus,
    last_id: int,
    reset: bool,
    keepalive_s: float,
    deadline: float,
    clock: Callable[[], float],
    live: Live | None = None,
    seen: int = 0,
) -> Iterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    if reset:
        # The client's id is beyond the log (a new journal): tell the page to reload all.
        yield f"id: {last_id}\nevent: reset\ndata: {{}}\n\n"
    while True:
        events = store.events_since(last_id, limit=REPLAY_BATCH)
        for ev in events:
            yield format_event(ev)
            last_id = ev.id
        if len(events) == REPLAY_BATCH:
            continue
        poked = bus.pokes
        if live is not None:
            seen, chunks = live(seen)
            yield from chunks
        remaining = deadline - clock()
        if remaining <= 0 or bus.closed:
            return
        if not bus.wait(last_id, min(keepalive_s, remaining), poked if live else None):
            yield ": keepalive\n\n"


__all__ = ["EventBus", "format_event", "parse_last_event_id", "stream"]
