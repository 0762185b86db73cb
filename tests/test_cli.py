import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from geo_mz.cli import main
from geo_mz.core.workspace import Workspace, file_sha256

from .conftest import care_props, feature, point, write_geojson


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_is_chinese_and_english():
    out = invoke("--help").output
    assert "民政" in out and "civil-affairs" in out
    for cmd in ("demo", "validate", "import", "info", "catalog"):
        assert cmd in out
        sub = invoke(cmd, "--help").output
        assert "/" in sub  # every help line: 中文 / English


def test_validate_exit_codes(tmp_path: Path, good_care_file: Path):
    ok = invoke("validate", str(good_care_file), "--layer", "elder_care")
    assert ok.exit_code == 0, ok.output
    assert "0 错误 errors" in ok.output
    bad = write_geojson(tmp_path / "bad.geojson", [feature(care_props(1, kind="x"), point(1, 1))])
    res = invoke("validate", str(bad), "--layer", "elder_care", "--json")
    assert res.exit_code == 2
    body = json.loads(res.stdout)
    assert body["counts"]["error"] == 2
    assert {
        (p["row"], p["field"], p["code"]) for p in body["problems"] if p["severity"] == "error"
    } == {(1, "kind", "not_allowed"), (1, "geometry", "outside_area")}
    assert (
        invoke("validate", str(tmp_path / "none.geojson"), "--layer", "elder_care").exit_code == 2
    )
    assert invoke("validate", str(good_care_file), "--layer", "nope").exit_code == 2


def test_import_and_info(tmp_path: Path, good_care_file: Path):
    ws = Workspace.create(
        tmp_path / "w.gpkg",
        name="江门市蓬江区",
        adcode="440703",
        bounds=(112.9, 22.45, 113.25, 22.85),
    )
    res = invoke(
        "import", str(good_care_file), "--layer", "elder_care", "--workspace", str(ws.path)
    )
    assert res.exit_code == 0, res.output
    before = file_sha256(ws.path)
    bad = write_geojson(
        tmp_path / "bad.geojson", [feature(care_props(1, beds="many"), point(113.05, 22.6))]
    )
    res = invoke("import", str(bad), "--layer", "elder_care", "--workspace", str(ws.path))
    assert res.exit_code == 2
    assert "row 1" in res.stderr and "beds" in res.stderr and "nothing was changed" in res.stderr
    assert file_sha256(ws.path) == before
    info = invoke("info", str(ws.path))
    assert info.exit_code == 0 and "elder_care" in info.output and "养老服务设施" in info.output
    data = json.loads(invoke("info", str(ws.path), "--json").stdout)
    assert data["layers"][0]["rows"] == 3 and data["measure_crs"] == "EPSG:4547"
    assert invoke("info", str(tmp_path / "missing.gpkg")).exit_code == 2


def test_catalog_lists_layers_and_fields():
    out = invoke("catalog").output
    assert "elder_care" in out and "应急避难场所" in out
    out = invoke("catalog", "elder_care").output
    assert "农村幸福院" in out and "rural_happiness_home" in out


def test_names_search_uses_the_shipped_gazetteer():
    res = invoke("names", "search", "棠下", "--code-prefix", "440703", "--limit", "3")
    assert res.exit_code == 0, res.output
    first = res.stdout.splitlines()[0]
    assert first.startswith("440703101") and "广东省 江门市 蓬江区 棠下镇" in first
    res = invoke("names", "search", "棠下", "--level", "nowhere")
    assert res.exit_code == 2


@pytest.mark.parametrize("command", ["webmap import", "serve"])
def test_an_unreachable_database_is_a_bilingual_message_not_a_traceback(
    command: str, sample_ws, tmp_path: Path
):
    pytest.importorskip("psycopg")
    if command == "serve":
        pytest.importorskip("flask")
    from webmap.testing_postgis import free_port

    url = f"postgresql://geo_mz:s3cret@127.0.0.1:{free_port()}/nope"  # nothing listens there
    args = {
        "webmap import": ["webmap", "import", str(sample_ws.path), "--database", url],
        "serve": ["serve", "--database", url, "--users", str(tmp_path / "u.sqlite")],
    }[command]
    r = CliRunner(env={"GEO_MZ_SECRET_KEY": "k" * 40}).invoke(main, args)
    assert r.exit_code == 2, r.output
    assert "无法连接数据库" in r.output and "cannot connect to the database" in r.output
    assert "s3cret" not in r.output and "Traceback" not in r.output


def test_names_choices_are_the_librarys():
    """The CLI lists levels and classes itself (``--help`` imports no gazetteer): same values."""
    from geo_mz.cli.names import names
    from geo_mz.names import LEVELS, NAME_CLASSES

    def choices(command: str, option: str) -> list[str]:
        param = next(p for p in names.commands[command].params if option in p.opts)
        return list(param.type.choices)

    assert choices("search", "--level") == list(LEVELS)
    assert choices("check", "--class") == list(NAME_CLASSES)
    assert choices("report", "--class") == list(NAME_CLASSES)
