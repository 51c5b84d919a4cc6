"""The served OpenAPI document describes what is served: problem+json errors, runtime maximums."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from fastapi import APIRouter, FastAPI

from floodgate.app import create_app
from floodgate.settings import Settings
from floodgate.web.openapi import PROBLEM_SCHEMA, build_openapi, problem_responses
from floodgate.web.problem_body import PROBLEM_JSON, problem_body

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    app = create_app(Settings(gc_freeze=False, max_page_size=37))  # type: ignore[call-arg]
    schema: dict[str, Any] = app.openapi()
    return schema


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, item[method])
        for path, item in doc["paths"].items()
        for method in METHODS
        if method in item
    ]


def test_every_error_is_a_problem_document(doc: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in json.dumps(doc)
    for path, method, operation in operations(doc):
        statuses = {int(s) for s in operation["responses"]}
        assert {422, 429, 503} <= statuses, (path, method)
        if "{" in path:
            assert 404 in statuses, (path, method)
        if method in ("post", "patch"):
            assert {400, 413, 415} <= statuses, (path, method)
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {
                    PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (path, method, status)
        assert set(operation["responses"]["429"]["headers"]) == {
            "Retry-After",
            "RateLimit-Policy",
            "RateLimit",
        }
        assert set(operation["responses"]["503"]["headers"]) == {"Retry-After"}


def test_conflicts_are_documented_where_emails_are_written(doc: dict[str, Any]) -> None:
    assert "409" in doc["paths"]["/api/v1/users"]["post"]["responses"]
    assert "409" in doc["paths"]["/api/v1/users/{user_id}"]["patch"]["responses"]


@pytest.mark.parametrize(
    ("status", "extra"),
    [
        (404, None),
        (415, None),
        (422, {"errors": [{"loc": ["query", "per_page"], "msg": "must be at most 100"}]}),
        (422, {"errors": [{"loc": ["body", 0, "name"], "msg": "x", "type": "string_type"}]}),
        (503, None),
    ],
)
def test_the_problem_schema_matches_the_body_writer(status: int, extra: dict[str, Any]) -> None:
    jsonschema.validate(json.loads(problem_body(status, "detail", extra=extra)), PROBLEM_SCHEMA)


def test_page_size_maximum_is_the_served_setting(doc: dict[str, Any]) -> None:
    params = {
        (path, p["name"]): p["schema"]
        for path, _, operation in operations(doc)
        for p in operation.get("parameters", ())
    }
    for key in [
        ("/api/v1/users", "per_page"),
        ("/api/v1/messages", "per_page"),
        ("/api/v1/messages", "limit"),
    ]:
        integer = next(b for b in params[key]["anyOf"] if b["type"] == "integer")
        assert integer["maximum"] == 37, key
    assert "x-floodgate-maximum-setting" not in json.dumps(doc)


def test_patch_fields_are_optional_but_not_nullable(doc: dict[str, Any]) -> None:
    for name in ("UserUpdate", "MessageUpdate"):
        schema = doc["components"]["schemas"][name]
        assert "required" not in schema
        assert "null" not in json.dumps(schema), schema


def test_id_bounds_are_exact_integers(doc: dict[str, Any]) -> None:
    user_id = doc["components"]["schemas"]["MessageCreate"]["properties"]["user_id"]
    assert user_id["maximum"] == 2**63 - 1
    assert type(user_id["maximum"]) is int
    assert type(user_id["minimum"]) is int


def test_created_resources_link_to_their_item_operations(doc: dict[str, Any]) -> None:
    for collection, param in (("/api/v1/users", "user_id"), ("/api/v1/messages", "message_id")):
        links = doc["paths"][collection]["post"]["responses"]["201"]["links"]
        item = doc["paths"][f"{collection}/{{{param}}}"]
        assert {link["operationId"] for link in links.values()} == {
            item[m]["operationId"] for m in ("get", "patch", "delete")
        }
        assert all(link["parameters"] == {param: "$response.body#/id"} for link in links.values())


def test_a_second_domain_gets_the_error_documentation_for_free() -> None:
    router = APIRouter(prefix="/api/v2/things")

    @router.post("", status_code=201, responses=problem_responses(409))
    async def create_thing(name: str) -> dict[str, str]:
        return {"name": name}

    @router.get("/{thing_id}")
    async def get_thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    app = FastAPI()
    app.include_router(router)
    doc = build_openapi(app, Settings(gc_freeze=False))  # type: ignore[call-arg]
    created = doc["paths"]["/api/v2/things"]["post"]["responses"]
    assert {"409", "413", "415", "422", "429", "503"} <= set(created)
    assert created["201"]["links"]
    assert {"404", "422", "429", "503"} <= set(
        doc["paths"]["/api/v2/things/{thing_id}"]["get"]["responses"]
    )
