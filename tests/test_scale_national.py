"""National data through the scale-out path: province QA and county coverage equal one process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from geo_mz.boundaries import topology as boundaries
from geo_mz.cli import main
from geo_mz.datasets.county_workload import write_workload
from geo_mz.eldercare import coverage
from geo_mz.eldercare.circle15 import CircleSettings
from geo_mz.network.graph import network_from_roads
from geo_mz.scale import runner as scale

pytestmark = pytest.mark.slow


def _some(counties, prefixes: tuple[str, ...]):
    """Matched counties whose codes start with one of ``prefixes``."""
    c = counties[counties["matched"].astype(bool)]
    return c[c["adcode"].str.startswith(prefixes)]


def test_province_qa_on_dask_equals_one_qa_of_the_same_counties(echarts_counties, tmp_path):
    _, counties = echarts_counties
    # Zhejiang and Fujian share a border; the run checks each province with its neighbours.
    ws = write_workload(tmp_path / "qa.gpkg", _some(counties, ("33", "35")), boundaries_only=True)
    units = ws.read("admin_units")
    parts = scale.province_parts(units)
    assert [p.code for p in parts] == ["33", "35"]
    crs = "EPSG:4549"  # CGCS2000 GK CM 120°E: one zone for both, so the runs compare exactly
    res = scale.run_partitioned(
        "boundaries", ws.path, parts, store=tmp_path / "runs.gpkg",
        options={"level": "county", "measure_crs": crs}, workers=2,
    )  # fmt: skip
    assert res.ok, res.failed
    got = boundaries.number_findings(scale.gather(tmp_path / "runs.gpkg", res.run_key, "findings"))
    whole = boundaries.qa(units, code_field="adcode", name_field="name", measure_crs=crs)
    ref = whole.findings.to_crs("EPSG:4490")
    assert len(got) == len(ref) > 0
    cols = ["finding_id", "kind", "sliver_of", "unit_a", "unit_b", "units", "detail"]
    pd.testing.assert_frame_equal(
        pd.DataFrame(got[cols]).astype(str), pd.DataFrame(ref[cols]).astype(str)
    )
    np.testing.assert_allclose(
        got["area_m2"].astype(float), ref["area_m2"].astype(float), rtol=1e-9
    )
    # Where the echarts borders do not match (quantised to 1/1024°) there are gaps and overlaps.
    assert {"gap", "overlap"} <= set(got["kind"])


def test_county_coverage_on_a_generated_workload_equals_one_process(echarts_counties, tmp_path):
    _, counties = echarts_counties
    quzhou = _some(counties, ("3308",))
    assert len(quzhou) == 6
    ws = write_workload(tmp_path / "quzhou.gpkg", quzhou)
    out = tmp_path / "out"
    r = CliRunner().invoke(
        main,
        ["scale", "run", "coverage", "--workspace", str(ws.path), "--by", "county",
         "--out", str(out), "--workers", "2", "--lang", "en"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "Parts done: 6/6" in r.output
    rs = scale.open_run_store(out / "runs.gpkg")
    key = rs.runs()["run_key"].iloc[0]
    got = scale.gather(out / "runs.gpkg", key, "times").set_index("cell_id")
    # One process over the six counties' streets (every component kept, as the parts do).
    s = CircleSettings()
    layers = ws.read_all()
    net = network_from_roads(layers["roads"], mode="walk", walk_speed_kmh=s.walk_speed_kmh,
                             measure_crs=ws.metadata["measure_crs"], components="all")  # fmt: skip
    centres = coverage.select_centres(layers["elder_care"], kinds=s.kinds, statuses=s.statuses)
    whole = coverage.access_times(net, centres, layers["population"], max_snap_m=s.max_snap_m)
    g = got.loc[whole["cell_id"]]
    # Parts measure in their own GK zone too: Quzhou lies in one zone, so bit for bit.
    np.testing.assert_array_equal(g["walk_min"].to_numpy(float), whole["walk_min"].to_numpy())
    assert (g["nearest_centre"].astype(str).to_numpy() == whole["nearest_centre"].astype(str)).all()
    share = pd.read_csv(out / "scale_coverage_parts.csv")["kpi"]
    assert share.between(0.05, 0.95).all()
