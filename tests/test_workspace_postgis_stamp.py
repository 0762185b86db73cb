"""A PostGIS workspace's layer stamp: what lets a worker keep a layer between parts."""

from __future__ import annotations

from geo_mz.core.workspace_postgis import PostgisWorkspace


def test_a_layer_stamp_changes_when_the_layer_is_written_and_only_then(pg_url, sample_ws):
    pg = PostgisWorkspace.from_workspace(sample_ws, pg_url, schema="stamp_ws", replace=True)
    care, roads = pg.layer_stamp("elder_care"), pg.layer_stamp("roads")
    assert care and roads and care != roads
    pg.read("elder_care")
    with pg.snapshot():
        assert pg.layer_stamp("elder_care") == care  # reads change nothing
    prov = {"synthetic": True, "source": "test", "method": "rewritten"}
    pg.write_layers({"elder_care": pg.read("elder_care").iloc[:3]}, {"elder_care": prov})
    assert pg.layer_stamp("elder_care") not in (None, care)
    assert pg.layer_stamp("roads") == roads  # another layer's write is not this one's
    assert pg.layer_stamp("no_such_layer") is None
