"""The ``/events`` handshake checked on the event loop answers exactly as flask does.

``webmap.asgi`` decides common stream requests (anonymous, or a session cookie it verified
before) without a flask request; everything else goes through flask. Each case here is sent
both ways (``WebMapASGI.fast_events`` on and off) to the same server and the answers compared.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import pytest

pytest.importorskip("flask")
pytest.importorskip("uvicorn")
pytest.importorskip("a2wsgi")

from tests.test_webmap_streams import AUTH, Stream, post
from webmap import create_app
from webmap.asgi import SLOW_PATH, running
from webmap.core.users import UserStore
from webmap.testing import PASSWORD, fresh_settings


def login(root: str, name: str) -> str:
    req = urllib.request.Request(
        root + "/login",
        data=json.dumps({"username": name, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.headers["Set-Cookie"].split(";", 1)[0]


def both_ways(asgi, root: str, cases: list[tuple[str, str]]) -> list[tuple[Stream, Stream]]:
    """Open each (query, headers) stream with the fast path, then through flask."""

    async def scenario() -> list[tuple[Stream, Stream]]:
        out = []
        for query, headers in cases:
            pair = []
            for fast in (True, False):
                asgi.fast_events = fast
                pair.append(await Stream().open(root, headers=headers, query=query))
            out.append((pair[0], pair[1]))
        await asyncio.sleep(0.3)
        for pair in out:
            for s in pair:
                s.close()
        asgi.fast_events = True
        return out

    return asyncio.run(scenario())


def head_lines(s: Stream) -> list[str]:
    """The response head without its date (the two answers are a moment apart)."""
    lines = s.headers.strip().split("\r\n")
    return [line for line in lines if not line.lower().startswith("date:")]


def test_anonymous_and_session_streams_answer_as_flask_does(base, tmp_path):
    settings = fresh_settings(base, tmp_path / "ws")
    app = create_app(settings)
    with running(app) as (root, asgi):
        assert post(root, "before")[0] == 201
        cookie = login(root, "viewer1")
        forged = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
        cases = [
            ("", ""),
            ("?since=0", ""),
            ("", "Last-Event-ID: 0\r\n"),
            ("?since=x", ""),
            ("?foo=1", ""),
            ("", f"Cookie: {cookie}\r\n"),
            ("?since=0", f"Cookie: {cookie}\r\nLast-Event-ID: 1\r\n"),
            ("", f"Cookie: {forged}\r\n"),
            ("", f"Authorization: {AUTH}\r\n"),
        ]
        pairs = both_ways(asgi, root, cases)
        assert cookie.split("=", 1)[1] in asgi._sessions  # verified on the loop, remembered
        for (query, headers), (fast, slow) in zip(cases, pairs, strict=True):
            assert head_lines(fast) == head_lines(slow), (query, headers)
            if fast.status != 200:
                assert json.loads(fast.text) == json.loads(slow.text)
            else:  # the same replay: ids from the same start
                assert fast.ids == slow.ids, (query, headers)
        statuses = [fast.status for fast, _ in pairs]
        assert statuses == [200, 200, 200, 400, 400, 200, 200, 200, 200]
        assert pairs[1][0].ids and pairs[1][0].ids[0] == 1  # since=0 replays the first edit

        # a user disabled after logging in: the loop defers to flask, which clears the cookie
        UserStore(settings.users_db).set_disabled("viewer1")
        ((fast, slow),) = both_ways(asgi, root, [("", f"Cookie: {cookie}\r\n")])
        assert fast.status == slow.status == 200  # anonymous_read: still a (public) stream
        assert "set-cookie" in fast.headers.lower()
        assert head_lines(fast) == head_lines(slow)


def test_login_required_streams_refuse_the_same_requests_both_ways(base, tmp_path):
    app = create_app(fresh_settings(base, tmp_path / "ws", anonymous_read=False))
    with running(app) as (root, asgi):
        cookie = login(root, "viewer1")
        forged = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
        cases = [
            ("", ""),
            ("", f"Cookie: {forged}\r\n"),
            ("", f"Cookie: {cookie}\r\n"),
            ("?since=-1", f"Cookie: {cookie}\r\n"),
            ("", f"Authorization: {AUTH}\r\n"),
            ("", "Authorization: Basic eDp5\r\n"),
        ]
        pairs = both_ways(asgi, root, cases)
        for (query, headers), (fast, slow) in zip(cases, pairs, strict=True):
            assert head_lines(fast) == head_lines(slow), (query, headers)
            if fast.status != 200:
                assert json.loads(fast.text) == json.loads(slow.text)
        assert [fast.status for fast, _ in pairs] == [401, 401, 200, 400, 200, 401]


def test_a_remembered_session_expires_with_flask_s_limit(base, tmp_path):
    app = create_app(fresh_settings(base, tmp_path / "ws"))
    with running(app) as (root, asgi):
        cookie = login(root, "viewer1").split("=", 1)[1]
        scope = {"method": "GET", "headers": [(b"cookie", f"geo_mz_session={cookie}".encode())]}
        assert asgi.fast_start(scope) is None  # a logged-in map, starting with the next event
        data, _ = asgi._sessions[cookie]
        assert data["user"] == "viewer1"
        asgi._session_max_age_s = 0  # now past flask's limit: not remembered, not accepted
        time.sleep(1.1)
        assert asgi._verified_session(cookie) is None
        assert asgi.fast_start(scope) is SLOW_PATH
