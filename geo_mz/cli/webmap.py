"""``geo-mz serve`` (the live web map, served by uvicorn) and ``geo-mz users`` (its accounts).

flask, uvicorn and a2wsgi are the ``[web]`` extra: imported only when these commands run.
"""

from __future__ import annotations

import os
import secrets
import sys
from contextlib import nullcontext
from pathlib import Path

import click

from geo_mz.cli.common import BAD_INPUT, bad_input, database_errors, need_extra
from geo_mz.cli.options import file_option

SECRET_ENV = "GEO_MZ_SECRET_KEY"
DEFAULT_THREADS = 16
"""Worker threads for flask requests; live event streams run on the event loop and use none
(same as ``webmap.asgi.DEFAULT_THREADS``; kept here so ``--help`` needs no web import)."""


def _need_web() -> None:
    need_extra("flask", "uvicorn", "a2wsgi", what="网页地图 / the web map")


def _fail(exc: Exception) -> None:
    click.secho(f"错误 / error: {exc}", fg="red", err=True)
    sys.exit(BAD_INPUT)


def secret_key_for(workspace: Path | None, key_file: str | None) -> str:
    """Return the session secret: ``$GEO_MZ_SECRET_KEY``, else a key file (made once, mode 0600).

    The default file is ``<workspace stem>.secret`` beside the workspace, so sessions survive
    a restart of the server.
    """
    env = os.environ.get(SECRET_ENV)
    if env:
        return env
    if workspace is None and not key_file:
        raise ValueError(
            f"未给 --workspace 时，请给 --secret-key-file 或设置 ${SECRET_ENV} / without "
            f"--workspace give --secret-key-file or ${SECRET_ENV}"
        )
    path = Path(key_file) if key_file else workspace.with_name(f"{workspace.stem}.secret")  # type: ignore[union-attr]
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    return key


@click.command()
@file_option("--workspace", help="工作空间 GeoPackage / the workspace to serve (or --database).")
@click.option(
    "--database",
    "database_url",
    default=None,
    envvar="GEO_MZ_DATABASE_URL",
    help="PostGIS 库 / serve postgresql://... (made by `geo-mz webmap import`) instead; "
    "several server processes may share it [env GEO_MZ_DATABASE_URL].",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="监听地址 / address.")
@click.option("--port", default=8000, show_default=True, type=int, help="端口 / port.")
@click.option(
    "--users",
    "users_db",
    default=None,
    type=click.Path(dir_okay=False),
    help="用户库 / users SQLite file [default: <workspace>.users.sqlite beside it].",
)
@click.option(
    "--journal",
    "journal_db",
    default=None,
    type=click.Path(dir_okay=False),
    help="审计与事件库 / audit+event SQLite [default: <workspace>.webmap.sqlite].",
)
@click.option("--tiles", default=None, help="可选底图 XYZ 地址 / optional XYZ tile URL template.")
@click.option("--tiles-attribution", default="", help="底图署名 / tile attribution.")
@click.option(
    "--login-required",
    is_flag=True,
    help="未登录不可查看 / people must log in to see the map.",
)
@click.option(
    "--secret-key-file",
    default=None,
    type=click.Path(dir_okay=False),
    help=f"会话密钥文件 / session secret file (or ${SECRET_ENV}) [default: <workspace>.secret].",
)
@click.option(
    "--threads",
    default=DEFAULT_THREADS,
    show_default=True,
    type=click.IntRange(4, 1024),
    help="请求工作线程 / worker threads for requests (live maps use none).",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    metavar="N",
    help="服务进程数 / server processes [default: one per CPU with --database, 1 for a "
    "GeoPackage].",
)
@click.option(
    "--max-streams",
    default=2_000,
    show_default=True,
    type=click.IntRange(1),
    metavar="N",
    help="实时连接上限 / most live map streams at once (503 + Retry-After past it).",
)
@click.option(
    "--max-streams-per-ip",
    "max_streams_per_client",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    metavar="N",
    help="每个地址的实时连接上限 / most live streams from one client address.",
)
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
def serve(
    workspace: str | None,
    database_url: str | None,
    host: str,
    port: int,
    users_db: str | None,
    journal_db: str | None,
    tiles: str | None,
    tiles_attribution: str,
    login_required: bool,
    secret_key_file: str | None,
    threads: int,
    workers: int | None,
    max_streams: int,
    max_streams_per_client: int,
    lang: str,
) -> None:
    """启动灾害应急指挥网页地图 / serve the live web map of a workspace.

    OGC API - Features at /collections, the map at /, live updates at /events.
    Stream caps (--max-streams, --max-streams-per-ip) count per process.
    """
    _need_web()
    from webmap import Settings, SettingsError, create_app
    from webmap.asgi import serve as serve_asgi

    if database_url:
        need_extra("psycopg", what="PostGIS 数据库 / serving a PostGIS database")
    ws = Path(workspace) if workspace else None
    if ws is None and not database_url:
        _fail(
            ValueError(
                "请给 --workspace W.gpkg 或 --database postgresql://... / give --workspace "
                "W.gpkg or --database postgresql://..."
            )
        )
    with bad_input():
        try:
            settings = Settings(
                workspace=ws,
                database_url=database_url,
                secret_key=secret_key_for(ws, secret_key_file),
                users_db=Path(users_db) if users_db else None,
                journal_db=Path(journal_db) if journal_db else None,
                tiles_url=tiles,
                tiles_attribution=tiles_attribution,
                anonymous_read=not login_required,
                default_lang=lang,  # type: ignore[arg-type]
                sse_max_streams=max_streams,
                sse_max_streams_per_client=max_streams_per_client,
            )
        except (SettingsError, ValueError, OSError) as exc:
            _fail(exc)
        try:
            with database_errors(database_url) if database_url else nullcontext():
                app = create_app(settings)
        except ValueError as exc:  # e.g. a database nothing was imported into
            _fail(exc)
    api = app.extensions["webmap"]
    if api.added_incidents:
        click.echo(
            f"提示 / note: {workspace} 没有灾情报告图层，已加入空的 incidents 图层以便上报 / "
            "had no incident reports layer: an empty 'incidents' layer was added so reports "
            "can be taken",
            err=True,
        )
    if not api.users.all():
        click.echo(
            "提示 / note: 还没有用户，请先添加 / no users yet; add one with "
            f"`geo-mz users add NAME --role admin --workspace {workspace}`",
            err=True,
        )
    if workers is None:
        workers = default_workers(database=bool(database_url))
    click.echo(f"地图 / map: http://{host}:{port}/   (Ctrl-C 停止 / to stop)", err=True)
    if workers == 1:
        serve_asgi(app, host=host, port=port, threads=threads)  # closes the API when it stops
        return
    click.echo(f"服务进程 / server processes: {workers}", err=True)
    try:  # each worker builds its own app after fork (connections, threads, caches)
        serve_asgi(
            app,
            host=host,
            port=port,
            threads=threads,
            workers=workers,
            make_app=lambda: create_app(settings),
        )
    except RuntimeError as exc:
        _fail(exc)


def default_workers(*, database: bool) -> int:
    """Server processes when ``--workers`` is not given.

    PostGIS: one per CPU (every process ``LISTEN``s for the others' edits). GeoPackage: one,
    because each worker keeps its own copy of the layers in memory and learns the others'
    edits by polling the journal every 20 ms (``webmap.workers``); ``--workers N`` asks for
    more explicitly.

    Parameters
    ----------
    database
        Whether the server reads a PostGIS database (else a GeoPackage).

    Returns
    -------
    int
        Server processes.
    """
    if not database:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cpus or 1)


@click.group()
def users() -> None:
    """管理网页地图用户 / manage the web map's users (roles: viewer, reporter, commander, admin)."""


def _users_db(workspace: str | None, users_db: str | None) -> Path:
    from webmap.settings import users_db_for

    if users_db:
        return Path(users_db)
    if workspace:
        return users_db_for(workspace)
    _fail(
        ValueError(
            "请给 --workspace（用户库在其旁边）或 --users FILE / give --workspace (users file "
            "beside it) or --users FILE"
        )
    )
    raise AssertionError  # unreachable: _fail exits


_workspace_opt = click.option(
    "--workspace",
    default=None,
    type=click.Path(dir_okay=False),
    help="工作空间 / the workspace (users file beside it).",
)
_users_opt = click.option(
    "--users", "users_db", default=None, type=click.Path(dir_okay=False), help="用户库 / file."
)


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["viewer", "reporter", "commander", "admin"]),
    help="角色 / role.",
)
@_workspace_opt
@_users_opt
@click.option(
    "--password",
    prompt="密码 / password",
    hide_input=True,
    confirmation_prompt=True,
    help="密码(不给则提示输入) / password (prompted when not given).",
)
@click.option("--overwrite", is_flag=True, help="重置已有用户 / reset an existing user.")
def users_add(
    name: str,
    role: str,
    workspace: str | None,
    users_db: str | None,
    password: str,
    overwrite: bool,
) -> None:
    """添加用户 / add a user NAME with a role."""
    _need_web()
    from webmap.core.users import UserError, UserStore

    path = _users_db(workspace, users_db)
    try:
        user = UserStore(path).add(name, role, password, overwrite=overwrite)
    except UserError as exc:
        _fail(exc)
    click.echo(f"已添加 / added: {user.name} ({user.role}) → {path}")


@users.command("list")
@_workspace_opt
@_users_opt
def users_list(workspace: str | None, users_db: str | None) -> None:
    """列出用户 / list users."""
    _need_web()
    from webmap.core.users import UserStore

    for u in UserStore(_users_db(workspace, users_db)).all():
        off = "  (停用 disabled)" if u["disabled"] else ""
        click.echo(f"{u['name']}\t{u['role']}\t{u['created_at']}{off}")


@users.command("disable")
@click.argument("name")
@_workspace_opt
@_users_opt
@click.option("--enable", is_flag=True, help="重新启用 / enable again.")
def users_disable(name: str, workspace: str | None, users_db: str | None, enable: bool) -> None:
    """停用用户 / disable (or --enable) a user."""
    _need_web()
    from webmap.core.users import UserError, UserStore

    try:
        UserStore(_users_db(workspace, users_db)).set_disabled(name, not enable)
    except UserError as exc:
        _fail(exc)
    click.echo(f"{name}: {'已启用 enabled' if enable else '已停用 disabled'}")


__all__ = ["default_workers", "secret_key_for", "serve", "users"]
