"""Live event streams on one asyncio event loop: a fan-out hub, caps, heartbeats and replay.

The threaded stream of :mod:`webmap.core.events` holds one server thread per open map and makes
every one of them re-read the event log on each edit. Here one hub task per process reads each
new event from the log once, formats it once and appends the same text to every open stream's
queue; each stream is a coroutine that writes its queue to its socket. An open map therefore
costs a few kilobytes and no thread, and an edit costs one log query however many maps are open.

How the hub learns of an event: :class:`~webmap.core.events.EventBus` calls a listener from the
thread that committed the edit (a flask worker) or was notified of it (the PostGIS ``LISTEN``
thread); the listener only schedules a wake-up on the loop (``call_soon_threadsafe``).

Replay is exact, as in the threaded stream. A stream is registered (its queue starts collecting)
*before* it reads what it missed, so an event is either in what it read or in its queue; ids
already sent are skipped. Recent events are kept in memory, so a reconnecting map replays from
there without a query when it was away only briefly; otherwise it reads the log in batches.
The hub itself asks the store's memory first (``GpkgStore.recent_events``: the events this
process committed, when they continue the cursor without a gap), so an edit made here reaches
the streams without a thread hop and a log query; other processes' events come from the log.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from webmap.core.events import REPLAY_BATCH, RETRY_MS, EventBus, Live, format_event
from webmap.core.store import Event, FeatureStore

RECENT_EVENTS = 2_000
"""Newest events kept in memory for replay without a query (local choice)."""
MAX_BACKLOG = 5_000
"""Chunks a stream may have queued unsent; a client that far behind is dropped and replays on
reconnect (local choice: a page that cannot keep up is better reloaded than buffered)."""
KEEPALIVE = ": keepalive\n\n"
FAN_OUT_BATCH = 100
"""Streams woken per turn of the event loop when an event goes out (local choice)."""
FAN_OUT_DELAY_S = 0.003
"""Pause before fanning an event out to more than one batch of streams, seconds (local choice:
the writer's ``201`` goes out first instead of sharing the interpreter with every map's write;
measured with ``bench/bench_sse.py``)."""
LOG_RETRY_S = 1.0
"""Seconds before the hub reads the event log again after a failed read."""
log = logging.getLogger(__name__)


class StreamsFullError(Exception):
    """Too many open streams (overall or from one address): answer 503 with ``Retry-After``.

    Parameters
    ----------
    message
        What is full, Chinese first then English.
    retry_after_s
        Seconds the client should wait.
    """

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(eq=False)
class Client:
    """One open stream: its queue of (event id or None, chunk) and its wake-up."""

    addr: str
    deadline: float
    last_write: float
    chunks: collections.deque[tuple[int | None, str]] = field(default_factory=collections.deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False

    def push(self, event_id: int | None, chunk: str) -> None:
        """Queue a chunk (or end the stream when the client is too far behind)."""
        if self.done:
            return
        if len(self.chunks) >= MAX_BACKLOG:
            self.end()
            return
        self.chunks.append((event_id, chunk))
        self.wake.set()

    def end(self) -> None:
        """End the stream at its next wake-up (client gone, too slow, too old, or shutdown)."""
        self.done = True
        self.chunks.clear()
        self.wake.set()


class StreamHub:
    """Every open event stream of one process, fed from one event-log reader.

    Parameters
    ----------
    store
        Where the event log is.
    bus
        This process's :class:`~webmap.core.events.EventBus`.
    live
        Source of live-only chunks (the relief re-analysis), as for the threaded stream.
    heartbeat_s
        An idle stream gets a comment line this often, so a dead client is noticed.
    max_s
        A stream ends after this long (the browser reconnects with ``Last-Event-ID``).
    max_streams, max_per_client
        Caps overall and per client address.
    retry_after_s
        ``Retry-After`` of a refusal.
    clock
        Monotonic clock.
    """

    def __init__(
        self,
        store: FeatureStore,
        bus: EventBus,
        *,
        live: Live | None = None,
        heartbeat_s: float = 15.0,
        max_s: float = 300.0,
        max_streams: int = 2_000,
        max_per_client: int = 100,
        retry_after_s: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.bus, self.live = store, bus, live
        self.heartbeat_s, self.max_s = float(heartbeat_s), float(max_s)
        self.max_streams, self.max_per_client = int(max_streams), int(max_per_client)
        self.retry_after_s = int(retry_after_s)
        self.clock = clock
        self.clients: set[Client] = set()
        self.per_addr: collections.Counter[str] = collections.Counter()
        self._recent: collections.deque[tuple[int, str]] = collections.deque(maxlen=RECENT_EVENTS)
        self._cursor = 0  # newest event id read by the hub
        self._floor = 0  # `_recent` holds every event with floor < id <= cursor
        self._seen = 0  # live-chunk sequence
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kick: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._start_lock = asyncio.Lock()

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def open_streams(self) -> int:
        """How many streams are open now."""
        return len(self.clients)

    async def start(self) -> None:
        """Start reading the log on the running loop (idempotent)."""
        async with self._start_lock:
            if self._loop is not None:
                return
            self._kick = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self.bus.subscribe(self._notify)  # before reading the cursor: no event slips by
            self._cursor = self._floor = await asyncio.to_thread(self.store.last_event_id)
            self._seen = self.live(None)[0] if self.live is not None else 0
            # The server is loaded and serving: move what it holds now (libraries, the app,
            # cached layers) out of the collector's sight, so a full collection no longer walks
            # ~120k long-lived objects (37-100 ms with every stream and write stalled; measured,
            # one write in 60 at 1,000 maps).
            gc.freeze()
        self._tasks = [
            asyncio.create_task(self._read_log(), name="webmap-streams-log"),
            asyncio.create_task(self._heartbeat(), name="webmap-streams-heartbeat"),
        ]
        if self.bus.closed:
            self.shutdown()

    def _notify(self) -> None:
        """Bus listener, called from any thread: wake the log reader on the loop."""
        loop, kick = self._loop, self._kick
        if loop is None or kick is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            loop.call_soon_threadsafe(kick.set)

    def stop_soon(self) -> None:
        """Ask for :meth:`shutdown` from any thread (e.g. a signal handler)."""
        loop = self._loop
        if loop is None:
            self._closed = True
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed already
            loop.call_soon_threadsafe(self.shutdown)

    def shutdown(self) -> None:
        """End every stream and stop (on the loop; the server is stopping)."""
        self._closed = True
        self.bus.unsubscribe(self._notify)
        for client in list(self.clients):
            client.end()
        for task in self._tasks:
            task.cancel()

    # -- the shared reader ------------------------------------------------------------------
    async def _fan_out(self, event_id: int | None, chunk: str) -> None:
        """Queue a chunk on every stream, yielding to the loop between batches.

        Each push wakes a stream that writes its socket; in batches, a response the loop was
        asked to send meanwhile (the edit's own ``201``) goes out after one batch, not after
        every open map's write. Streams opened during the fan-out are not in the list: they
        start after the cursor (or replay it from memory), so none misses or repeats it.
        """
        for i, client in enumerate(list(self.clients), 1):
            client.push(event_id, chunk)
            if i % FAN_OUT_BATCH == 0:
                await asyncio.sleep(0)

    async def _read_events(self) -> list[Event]:
        """Return the events after the cursor: from the store's memory if it knows, else the log."""
        recent = getattr(self.store, "recent_events", None)
        if callable(recent):
            events = recent(self._cursor)
            if events is not None:
                return list(events)[:REPLAY_BATCH]
        return await asyncio.to_thread(self.store.events_since, self._cursor, limit=REPLAY_BATCH)

    async def _read_log(self) -> None:
        assert self._kick is not None
        while True:
            await self._kick.wait()
            if len(self.clients) > FAN_OUT_BATCH:
                # The edit's own thread is still answering its writer; with many maps open,
                # leave it the interpreter first (the loop idles, so the thread runs at once).
                await asyncio.sleep(FAN_OUT_DELAY_S)
            self._kick.clear()
            if self.bus.closed:
                self.shutdown()
                return
            while True:  # read on every wake, as the threaded stream does: nothing slips by
                try:
                    events = await self._read_events()
                except Exception:  # e.g. the database restarting: streams wait, then catch up
                    log.exception(
                        "读取事件日志失败，%s 秒后重试 / reading the event log failed;"
                        " retrying in %s s",
                        LOG_RETRY_S,
                        LOG_RETRY_S,
                    )
                    await asyncio.sleep(LOG_RETRY_S)
                    self._kick.set()
                    break
                for ev in events:
                    chunk = format_event(ev)
                    if len(self._recent) == self._recent.maxlen:
                        self._floor = self._recent[0][0]
                    self._recent.append((ev.id, chunk))
                    self._cursor = ev.id
                    await self._fan_out(ev.id, chunk)
                if len(events) < REPLAY_BATCH:
                    break
            if self.live is not None:
                self._seen, chunks = self.live(self._seen)
                for chunk in chunks:
                    await self._fan_out(None, chunk)

    async def _heartbeat(self) -> None:
        tick = self.heartbeat_s / 4
        while True:
            await asyncio.sleep(tick)
            now = self.clock()
            # Maps opened together get their keep-alives together: in batches, like events, so
            # an edit's answer or its fan-out is not queued behind 1,000 keep-alive writes.
            for i, client in enumerate(list(self.clients), 1):
                if now >= client.deadline:
                    client.end()  # the browser reconnects with Last-Event-ID
                elif now - client.last_write >= self.heartbeat_s - tick and not client.chunks:
                    client.push(None, KEEPALIVE)
                if i % FAN_OUT_BATCH == 0:
                    await asyncio.sleep(0)

    # -- one stream -------------------------------------------------------------------------
    def admit(self, addr: str) -> Client:
        """Register a stream from ``addr`` or raise :class:`StreamsFullError` past a cap."""
        if self._closed:
            raise StreamsFullError("服务器正在停止 / the server is stopping", self.retry_after_s)
        if len(self.clients) >= self.max_streams:
            raise StreamsFullError(
                f"实时连接已满（{self.max_streams} 个），请稍后重试 / too many live streams are"
                f" open ({self.max_streams}); try again later",
                self.retry_after_s,
            )
        if self.per_addr[addr] >= self.max_per_client:
            raise StreamsFullError(
                f"来自 {addr} 的实时连接已达上限 {self.max_per_client} 个，请关闭多余的地图页 /"
                f" {addr} already has {self.max_per_client} live streams open; close some map"
                " pages",
                self.retry_after_s,
            )
        now = self.clock()
        client = Client(addr=addr, deadline=now + self.max_s, last_write=now)
        self.clients.add(client)
        self.per_addr[addr] += 1
        return client

    def release(self, client: Client) -> None:
        """Forget a stream (its response has ended)."""
        if client in self.clients:
            self.clients.discard(client)
            self.per_addr[client.addr] -= 1
            if self.per_addr[client.addr] <= 0:
                del self.per_addr[client.addr]
        client.end()

    async def stream(self, client: Client, last_id: int | None) -> AsyncIterator[str]:
        """Yield one stream's text: replay after ``last_id``, then live events and heartbeats.

        Parameters
        ----------
        client
            From :meth:`admit` (registered before this reads anything, so nothing is lost).
        last_id
            The client's last seen event id; None to start with the next event.

        Yields
        ------
        str
            ``text/event-stream`` text, several events joined when they come together.
        """
        await self.start()
        yield f"retry: {RETRY_MS}\n\n"
        if last_id is None:
            # start with the next event: no query. Every event up to the bus's newest id is
            # committed and announced; those the hub has not read yet reach this client's queue
            # and are skipped there (id <= cur), so a reconnect storm costs no database reads.
            cur = max(self._cursor, self.bus.latest)
        elif self._floor <= last_id <= self._cursor:
            cur = self._cursor  # everything after last_id is in memory, up to the cursor
            missed = [chunk for eid, chunk in self._recent if eid > last_id]
            if missed:
                yield "".join(missed)
        else:
            newest = await asyncio.to_thread(self.store.last_event_id)
            reset = last_id is not None and last_id > newest
            cur = newest if last_id is None or reset else last_id
            if reset:  # the client's id is beyond the log (a new journal): reload everything
                yield f"id: {cur}\nevent: reset\ndata: {{}}\n\n"
            while True:
                events = await asyncio.to_thread(self.store.events_since, cur, limit=REPLAY_BATCH)
                if events:
                    yield "".join(format_event(ev) for ev in events)
                    cur = events[-1].id
                if len(events) < REPLAY_BATCH:
                    break
        while not client.done:
            parts = []
            while client.chunks:
                eid, chunk = client.chunks.popleft()
                if eid is not None:
                    if eid <= cur:
                        continue  # already sent by the replay
                    cur = eid
                parts.append(chunk)
            if parts:
                client.last_write = self.clock()
                yield "".join(parts)
                continue
            client.wake.clear()
            await client.wake.wait()


__all__ = [
    "FAN_OUT_BATCH",
    "FAN_OUT_DELAY_S",
    "KEEPALIVE",
    "MAX_BACKLOG",
    "RECENT_EVENTS",
    "Client",
    "StreamHub",
    "StreamsFullError",
]
