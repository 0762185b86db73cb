"""Web map against its own OpenAPI document, with schemathesis (property-based, bounded).

Every operation of ``GET /openapi`` is called with generated requests against the flask app
(WSGI, no socket): no response may be a server error (5xx), and every response must match the
document (status code, content type, headers, body schema). Reads run anonymously; writes run
as a commander using HTTP Basic (scripts need no CSRF token), on a copy of the sample workspace
whose incidents and road closures have features. The document carries every ``items``
parameter: ``bbox`` (2D/3D), ``bbox-crs``, ``crs``, ``datetime`` and the queryables.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("flask")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from webmap import create_app  # noqa: E402
from webmap.testing import basic_auth, fresh_settings, sample_base  # noqa: E402

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
BOUNDED = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
WRITES = ("POST", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    base = sample_base(tmp_path_factory.getbasetemp() / "webmap_base")
    # short event streams: GET /events returns after a fraction of a second; the generated
    # wrong logins (one client address) must not lock the address for the tests after them
    settings_ = fresh_settings(
        base,
        tmp_path_factory.mktemp("schema_ws"),
        sse_keepalive_s=0.05,
        sse_max_s=0.2,
        login_max_failures=1_000_000,
    )
    app = create_app(settings_)
    app.test_client().get("/names/search?q=x")  # starts building the place-name index
    fill_empty_layers(app)
    yield app
    app.extensions["webmap"].close()


def fill_empty_layers(app) -> None:
    """Give incidents and road closures features, so reads (datetime, crs, bbox) touch rows.

    A datetime filter on the empty incidents layer once hid a 500 that only a layer with
    features raised.
    """
    client = app.test_client()
    for i, when in enumerate(("2024-07-01T08:00:00Z", "2024-07-02T09:30:00Z", None)):
        props = {"kind": "flood", "description": f"schema test {i}"}
        if when:
            props["reported_at"] = when
        r = client.post(
            "/collections/incidents/items",
            json={
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [113.05 + i / 100, 22.6]},
                "properties": props,
            },
            headers=basic_auth("reporter1"),
        )
        assert r.status_code == 201, r.json
    line = {"type": "LineString", "coordinates": [[113.0, 22.7], [113.004, 22.701]]}
    r = client.post(
        "/collections/road_closures/items",
        json={"type": "Feature", "geometry": line, "properties": {"reason": "积水"}},
        headers=basic_auth("commander1"),
    )
    assert r.status_code == 201, r.json
    for name in ("incidents", "road_closures"):
        assert client.get(f"/collections/{name}/items").json["numberMatched"] > 0


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/openapi", app)


def run_operations(schema, methods: tuple[str, ...], headers: dict[str, str]) -> list[str]:
    """Call every operation with the given methods with generated cases; return the failures.

    A loop over the operations with Hypothesis' ``@given`` (rather than schemathesis' pytest
    plugin, which does not support pytest 9 yet): each failure is reported with its
    operation and the shrunk request, and every operation runs even after one fails.
    """
    failures: list[str] = []
    statuses: dict[int, int] = {}
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() not in methods:
            continue
        ran += 1

        @given(case=operation.as_strategy())
        @BOUNDED
        def check(case) -> None:
            merged = {**(case.headers or {}), **headers}
            response = case.call_and_validate(headers=merged, checks=CHECKS)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        try:
            check()
        except (
            Exception,
            BaseExceptionGroup,
        ) as exc:  # one entry per operation, with schemathesis' own report
            failures.append(f"{operation.label}: {exc}")
    assert ran, f"no {methods} operations in the document"
    print(f"{methods}: {ran} operations, responses by status {dict(sorted(statuses.items()))}")
    return failures


def wait_for_name_index(app, timeout_s: float = 120.0) -> None:
    """Wait until ``/names/search`` is past its documented 503 ``index_building`` phase."""
    client = app.test_client()
    deadline = time.monotonic() + timeout_s
    while client.get("/names/search?q=x").status_code == 503:
        assert time.monotonic() < deadline, "the place-name index was not built in time"
        time.sleep(0.5)


def test_writes_by_a_commander_match_the_document(api_schema):
    failures = run_operations(api_schema, WRITES, basic_auth("commander1"))
    assert not failures, "\n\n".join(failures)


def test_reads_match_the_document(app, api_schema):
    wait_for_name_index(app)
    failures = run_operations(api_schema, ("GET",), {})
    assert not failures, "\n\n".join(failures)


def test_items_document_the_ogc_parameters(app):
    """The generated requests above cover crs, bbox-crs, datetime and the queryables."""
    doc = app.test_client().get("/openapi").json
    params = doc["paths"]["/collections/incidents/items"]["get"]["parameters"]
    names = {p.get("name") or p["$ref"].rsplit("/", 1)[-1] for p in params}
    assert {"bbox", "bbox-crs", "crs", "datetime", "kind", "status"} <= names


def test_reads_with_every_crs_match_the_document(app, api_schema):
    """Known-good crs/bbox-crs/datetime requests on the non-empty incidents layer."""
    operation = api_schema["/collections/incidents/items"]["GET"]
    crs_list = app.test_client().get("/collections/incidents").json["crs"]
    for crs in crs_list:
        when = "2024-07-01T00:00:00Z/2024-12-31T00:00:00Z"  # the two dated reports
        case = operation.Case(query={"crs": crs, "datetime": when})
        response = case.call_and_validate(checks=CHECKS)
        assert response.status_code == 200, response.text
        got = {k.lower(): v for k, v in response.headers.items()}["content-crs"]
        assert got in (f"<{crs}>", [f"<{crs}>"])
        assert response.json()["numberMatched"] == 2


def test_admin_reads_match_the_document(api_schema):
    failures = run_operations(api_schema.include(path="/audit"), ("GET",), basic_auth("admin1"))
    assert not failures, "\n\n".join(failures)


def test_successful_writes_match_the_document(app, api_schema):
    """Generated bodies are rarely valid features; these known-good ones check the 2xx side."""
    auth = basic_auth("commander1")

    def call(path: str, method: str, expected: int, **kwargs):
        operation = api_schema[path][method]
        case = operation.Case(**kwargs)
        headers = {**auth, **kwargs.pop("headers", {})}
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        assert response.status_code == expected, response.text
        return response

    def etag_of(response) -> str:
        value = {k.lower(): v for k, v in response.headers.items()}["etag"]
        return value[0] if isinstance(value, list) else value

    point = {"type": "Point", "coordinates": [113.0, 22.7]}
    line = {"type": "LineString", "coordinates": [[113.0, 22.7], [113.004, 22.701]]}
    call(
        "/collections/incidents/items",
        "POST",
        201,
        body={"type": "Feature", "geometry": point, "properties": {"kind": "flood"}},
    )
    created = call(
        "/collections/road_closures/items",
        "POST",
        201,
        body={"type": "Feature", "geometry": line, "properties": {"reason": "积水"}},
    ).json()
    item = "/collections/road_closures/items/{featureId}"
    etag = etag_of(call(item, "GET", 200, path_parameters={"featureId": created["id"]}))
    call(
        item,
        "DELETE",
        204,
        path_parameters={"featureId": created["id"]},
        headers={"If-Match": etag},
    )
    shelter = "/collections/shelters/items/{featureId}"
    sid = app.test_client().get("/collections/shelters/items?limit=1").json["features"][0]["id"]
    etag = etag_of(call(shelter, "GET", 200, path_parameters={"featureId": sid}))
    call(
        shelter,
        "PATCH",
        200,
        path_parameters={"featureId": sid},
        headers={"If-Match": etag},
        body={"occupancy_persons": 3},
    )
