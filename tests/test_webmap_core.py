"""Web map core without flask: settings, users, the API object, events, ETags, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("flask")

from click.testing import CliRunner

from geo_mz.cli.webmap import serve, users
from webmap import Settings, SettingsError, WebMapAPI
from webmap.core.errors import BadRequestError
from webmap.core.events import EventBus, parse_last_event_id
from webmap.core.geojson import etag_matches, make_etag
from webmap.core.http import ApiRequest
from webmap.core.users import User, UserError, UserStore
from webmap.testing import PASSWORD, fresh_settings

REPO = Path(__file__).resolve().parents[1]


def test_importing_webmap_has_no_side_effects(tmp_path):
    code = (
        "import os, sys, threading\n"
        "before = set(os.listdir('.'))\n"
        "import webmap, webmap.settings, webmap.core\n"
        "assert 'flask' not in sys.modules, 'flask imported'\n"
        "assert 'geopandas' not in sys.modules, 'geopandas imported'\n"
        "import webmap.app, webmap.core.api\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "assert set(os.listdir('.')) == before, 'files created'\n"
        "assert not webmap.app.__dict__.get('app'), 'module-level app'\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    assert list(tmp_path.iterdir()) == []


def test_settings_are_validated_and_name_the_setting(tmp_path):
    ws = tmp_path / "w.gpkg"
    s = Settings(workspace=ws, secret_key="k" * 16)
    assert s.users_db == tmp_path / "w.users.sqlite"
    assert s.journal_db == tmp_path / "w.webmap.sqlite"
    with pytest.raises(SettingsError, match="secret_key"):
        Settings(workspace=ws, secret_key="short")
    with pytest.raises(SettingsError, match="max_body_bytes"):
        Settings(workspace=ws, secret_key="k" * 16, max_body_bytes=0)
    with pytest.raises(SettingsError, match="tiles_url"):
        Settings(workspace=ws, secret_key="k" * 16, tiles_url="file:///etc/passwd")
    with pytest.raises(SettingsError, match="different files"):
        Settings(workspace=ws, secret_key="k" * 16, users_db=ws)
    assert isinstance(SettingsError("x"), ValueError)
    assert s.replace(tiles_url="https://t0.tianditu.gov.cn/{z}/{x}/{y}").tiles_url


def test_user_store_hashes_and_checks_roles(tmp_path):
    store = UserStore(tmp_path / "u.sqlite")
    user = store.add("王小明", "reporter", "long-enough-pw")
    assert user == User("王小明", "reporter") and user.can("viewer") and not user.can("commander")
    raw = (tmp_path / "u.sqlite").read_bytes()
    assert b"long-enough-pw" not in raw and b"scrypt:" in raw
    assert store.authenticate("王小明", "long-enough-pw") == user
    assert store.authenticate("王小明", "wrong-password") is None
    assert store.authenticate("nobody", "long-enough-pw") is None
    with pytest.raises(UserError, match="already exists"):
        store.add("王小明", "admin", "long-enough-pw")
    with pytest.raises(UserError, match="role"):
        store.add("x", "general", "long-enough-pw")
    with pytest.raises(UserError, match="at least"):
        store.add("x", "viewer", "short")
    with pytest.raises(UserError, match="name"):
        store.add("bad name!", "viewer", "long-enough-pw")
    assert store.add("王小明", "admin", "another-password", overwrite=True).role == "admin"
    store.set_disabled("王小明")
    assert store.get("王小明") is None and store.all()[0]["disabled"]


def test_core_api_answers_without_flask(base, tmp_path):
    api = WebMapAPI(fresh_settings(base, tmp_path / "ws"))
    r = api.call(api.items, ApiRequest(args={"limit": "2"}), "shelters")
    assert r.status == 200 and json.loads(r.text())["numberReturned"] == 2
    assert r.media_type == "application/geo+json"
    r = api.call(api.items, ApiRequest(args={"limit": "x"}), "shelters")
    assert r.status == 400 and r.body["errors"][0]["field"] == "limit"
    r = api.call(api.write, ApiRequest(method="POST", body=b"{}"), "incidents")
    assert r.status == 401
    reporter = api.users.authenticate("reporter1", PASSWORD)
    body = json.dumps(
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [113.08, 22.6]},
            "properties": {"kind": "other"},
        }
    ).encode()
    req = ApiRequest(method="POST", body=body, content_type="application/json", user=reporter)
    r = api.call(api.write, req, "incidents")
    assert r.status == 201 and r.headers["X-Event-Id"] == "1"
    assert api.bus.latest == 1
    doc = api.openapi(ApiRequest()).body
    assert "/collections/incidents/items" in doc["paths"]


def test_event_bus_wakes_waiters():
    bus = EventBus(3)
    assert bus.wait(2, 0.01) and not bus.wait(3, 0.01)
    woke: list[float] = []
    t = threading.Thread(target=lambda: woke.append(time.monotonic()) if bus.wait(3, 5) else None)
    t.start()
    time.sleep(0.05)
    sent = time.monotonic()
    bus.publish(4)
    t.join(2)
    assert woke and woke[0] - sent < 0.5 and bus.latest == 4
    bus.close()
    assert bus.wait(100, 5) and bus.closed


def test_last_event_id_parsing():
    assert parse_last_event_id("7", "3") == 7
    assert parse_last_event_id(None, "3") == 3
    assert parse_last_event_id("", None) is None
    for bad in ("x", "-1", "1.5"):
        with pytest.raises(BadRequestError):
            parse_last_event_id(bad, None)


def test_etags():
    a = make_etag(1, {"id": "A", "properties": {"n": 1}})
    assert a.startswith('"1-') and a.endswith('"')
    assert a != make_etag(1, {"id": "A", "properties": {"n": 2}})
    assert a != make_etag(2, {"id": "A", "properties": {"n": 1}})
    assert etag_matches(a, a) and etag_matches(f'"x", {a}', a) and etag_matches("*", a)
    assert not etag_matches("W/" + a, a) and not etag_matches(a, None)


def test_cli_users_add_list_disable(tmp_path):
    ws = tmp_path / "w.gpkg"
    runner = CliRunner()
    r = runner.invoke(
        users,
        [
            "add",
            "zhang",
            "--role",
            "commander",
            "--workspace",
            str(ws),
            "--password",
            "pw-12345678",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "w.users.sqlite").is_file()
    r = runner.invoke(
        users,
        ["add", "li", "--role", "viewer", "--workspace", str(ws)],
        input="pw-abcdefgh\npw-abcdefgh\n",
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(users, ["list", "--workspace", str(ws)])
    assert "zhang\tcommander" in r.output and "li\tviewer" in r.output
    r = runner.invoke(
        users,
        ["add", "zhang", "--role", "admin", "--workspace", str(ws), "--password", "pw-12345678"],
    )
    assert r.exit_code == 2 and "already exists" in r.output
    r = runner.invoke(
        users,
        ["add", "x", "--role", "general", "--workspace", str(ws), "--password", "pw-12345678"],
    )
    assert r.exit_code == 2
    r = runner.invoke(users, ["disable", "li", "--workspace", str(ws)])
    assert r.exit_code == 0 and UserStore(tmp_path / "w.users.sqlite").get("li") is None
    r = runner.invoke(users, ["list"])
    assert r.exit_code == 2 and "--workspace" in r.output


def test_cli_serve_builds_the_app_and_hands_it_to_uvicorn(base, tmp_path, monkeypatch):
    """The command's options reach the app; serving itself is tested in test_webmap_streams."""
    import webmap.asgi

    settings = fresh_settings(base, tmp_path / "ws")
    served: dict = {}

    def fake_serve(app, **kw):
        served.update(kw, app=app)

    monkeypatch.setattr(webmap.asgi, "serve", fake_serve)
    monkeypatch.delenv("GEO_MZ_SECRET_KEY", raising=False)
    r = CliRunner().invoke(
        serve,
        [
            "--workspace",
            str(settings.workspace),
            "--port",
            "8123",
            "--tiles",
            "https://tiles.example/{z}/{x}/{y}.png",
            "--login-required",
        ],
    )
    assert r.exit_code == 0, r.output
    assert served["port"] == 8123 and served["host"] == "127.0.0.1" and served["threads"] == 16
    api = served["app"].extensions["webmap"]
    assert api.settings.tiles_url.startswith("https://tiles.example")
    assert not api.settings.anonymous_read
    key_file = settings.workspace.with_name("pengjiang.secret")
    assert key_file.is_file() and (key_file.stat().st_mode & 0o777) == 0o600
    assert api.settings.secret_key == key_file.read_text().strip()
    r = CliRunner().invoke(serve, ["--workspace", str(tmp_path / "missing.gpkg")])
    assert r.exit_code == 2
