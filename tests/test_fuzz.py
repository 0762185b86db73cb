"""Property tests: randomly broken layer files never give a traceback, only named errors."""

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_mz.core.errors import GeoMzError
from geo_mz.core.validate import LayerResult, prepare_layer

from .conftest import care_props, feature, point

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=6,
)
coords = st.floats(min_value=-1e7, max_value=1e7, allow_nan=False)
geometries = st.one_of(
    st.none(),
    st.builds(lambda x, y: point(x, y), coords, coords),
    st.builds(
        lambda t, c: {"type": t, "coordinates": c},
        st.sampled_from(
            [
                "Point",
                "LineString",
                "Polygon",
                "MultiPolygon",
                "MultiPoint",
                "GeometryCollection",
                "Blob",
            ]
        ),
        st.recursive(
            st.lists(coords, min_size=0, max_size=3),
            lambda c: st.lists(c, max_size=4),
            max_leaves=12,
        ),
    ),
)
field_names = st.sampled_from([*list(care_props(0)), "geometry", "名称", "extra"])


def run(path: Path, **kwargs) -> None:
    try:
        result = prepare_layer(path, "elder_care", **kwargs)
    except GeoMzError as exc:
        assert str(path) in str(exc) or path.name in str(exc)
        return
    assert isinstance(result, LayerResult)
    for p in result.problems:
        assert p.file == str(path)
        if p.row is not None:
            assert 1 <= p.row <= len(result.gdf)


@FUZZ
@given(
    n=st.integers(min_value=0, max_value=4),
    drops=st.lists(field_names, max_size=3),
    changes=st.dictionaries(field_names, json_values, max_size=4),
    geom=geometries,
    repair=st.booleans(),
)
def test_broken_geojson_features(n, drops, changes, geom, repair):
    feats = []
    for i in range(n):
        props = care_props(i)
        for d in drops:
            props.pop(d, None)
        if i == n - 1:
            props.update(changes)
        feats.append(feature(props, geom if i == n - 1 else point(113.05, 22.6)))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.geojson"
        path.write_text(
            json.dumps({"type": "FeatureCollection", "features": feats}, ensure_ascii=False),
            encoding="utf-8",
        )
        run(path, repair=repair)


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".geojson", ".gpkg", ".shp", ".csv"]))
def test_garbage_bytes(data, suffix):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"garbage{suffix}"
        path.write_bytes(data)
        run(path, source_crs="EPSG:4326")


@FUZZ
@given(
    cut=st.integers(min_value=0, max_value=10_000),
    flips=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=255)
        ),
        max_size=5,
    ),
    suffix=st.sampled_from([".geojson", ".csv"]),
)
def test_truncated_and_bit_flipped_files(cut, flips, suffix):
    if suffix == ".csv":
        text = "facility_id,name,kind,status,beds,lon,lat\n" + "".join(
            f"F{i},白沙{i},养老院,运营中,{i},113.0{i},22.6\n" for i in range(5)
        )
        raw = bytearray(text.encode("utf-8"))
    else:
        fc = {
            "type": "FeatureCollection",
            "features": [feature(care_props(i), point(113.05, 22.6)) for i in range(5)],
        }
        raw = bytearray(json.dumps(fc, ensure_ascii=False).encode("utf-8"))
    for pos, byte in flips:
        raw[pos % len(raw)] = byte
    raw = raw[: max(1, cut % (len(raw) + 1))]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"broken{suffix}"
        path.write_bytes(bytes(raw))
        run(path, source_crs="EPSG:4326" if suffix == ".csv" else None)
