"""``geo-mz webmap import``: load a workspace into PostGIS for ``geo-mz serve --database``.

psycopg is imported only when the command runs.
"""

from __future__ import annotations

import click

from geo_mz.cli.common import bad_input, database_errors, need_extra


@click.group("webmap")
def webmap_group() -> None:
    """网页地图数据库 / the web map's PostGIS database."""


@webmap_group.command("import")
@click.argument("workspace", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--database",
    "database_url",
    required=True,
    envvar="GEO_MZ_DATABASE_URL",
    help="PostGIS 库地址，须已有或可创建 postgis 扩展 / postgresql://... (the postgis "
    "extension must exist or be creatable) [env GEO_MZ_DATABASE_URL].",
)
@click.option(
    "--replace",
    is_flag=True,
    help="删除库中已有数据(含审计与事件) / drop what the database holds (edits, audit, events).",
)
def webmap_import(workspace: str, database_url: str, replace: bool) -> None:
    """导入工作空间到 PostGIS / import WORKSPACE (.gpkg) into the database."""
    need_extra("psycopg", what="导入 PostGIS / importing into PostGIS")
    from webmap.core.postgis import import_workspace

    with bad_input(), database_errors(database_url):
        try:
            n = import_workspace(database_url, workspace, replace=replace)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"已导入 / imported: {n} layers → {database_url.split('@')[-1]}")


__all__ = ["webmap_group"]
