"""Keys are canonical: typed like FastAPI parses them, built from declared parameters only."""

from __future__ import annotations

import uuid

import pytest

from floodgate.cache.keys import Param, make_key, to_bool, to_float, to_int, to_uuid
from floodgate.cache.routes import CachedRoute, RouteMatcher


def request_key(route: CachedRoute, path: str, query: bytes = b"") -> str | None:
    match = route.regex.match(path)
    assert match is not None, path
    return route.request_key(match, query)


MESSAGE = CachedRoute(
    name="message", namespace="messages", path="/api/v1/messages/{id}", path_params={"id": int}
)
LISTING = CachedRoute(
    name="list",
    namespace="messages",
    path="/api/v1/messages",
    query_params={
        "user_id": int,
        "page": Param(int, default=1),
        "tag": Param(str, many=True),
        "done": bool,
    },
)


def test_leading_zeros_and_signs_canonicalise_to_one_key() -> None:
    assert request_key(MESSAGE, "/api/v1/messages/007") == request_key(
        MESSAGE, "/api/v1/messages/7"
    )
    assert request_key(MESSAGE, "/api/v1/messages/+7") == MESSAGE.key(id=7)
    assert MESSAGE.key(id=7) == MESSAGE.key(id="007") == "messages:message:[7]"
    assert request_key(MESSAGE, "/api/v1/messages/8") != MESSAGE.key(id=7)


@pytest.mark.parametrize("text", ["7.0", "seven", " 7", "7_0", "\u0667", ""])
def test_values_the_converter_refuses_are_not_cached(text: str) -> None:
    match = MESSAGE.regex.match(f"/api/v1/messages/{text}")
    assert match is None or MESSAGE.request_key(match, b"") is None


def test_undeclared_query_parameters_and_order_are_ignored() -> None:
    a = request_key(LISTING, "/api/v1/messages", b"user_id=5&page=2&utm_source=x")
    b = request_key(LISTING, "/api/v1/messages", b"page=02&user_id=5")
    assert a == b
    assert a == LISTING.key(user_id=5, page=2)


def test_default_and_absent_share_a_key_last_value_wins_lists_keep_order() -> None:
    assert request_key(LISTING, "/api/v1/messages", b"user_id=5") == request_key(
        LISTING, "/api/v1/messages", b"user_id=5&page=1"
    )
    assert request_key(LISTING, "/api/v1/messages", b"user_id=1&user_id=5") == LISTING.key(
        user_id=5
    )
    ab = request_key(LISTING, "/api/v1/messages", b"tag=a&tag=b")
    assert ab == LISTING.key(tag=["a", "b"])
    assert ab != request_key(LISTING, "/api/v1/messages", b"tag=b&tag=a")
    assert request_key(LISTING, "/api/v1/messages", b"done=YES") == LISTING.key(done=True)
    # Absent is not the same as any value when there is no declared default.
    assert LISTING.key() != LISTING.key(user_id=0)
    assert request_key(LISTING, "/api/v1/messages", b"page=x") is None


def test_percent_encoded_query_values_are_decoded_like_starlette() -> None:
    route = CachedRoute(name="s", namespace="n", path="/s", query_params={"q": str})
    assert request_key(route, "/s", b"q=a%20b") == request_key(route, "/s", b"q=a+b")
    assert request_key(route, "/s", b"q=a%20b") == route.key(q="a b")


def test_string_values_cannot_collide_with_structure() -> None:
    route = CachedRoute(name="s", namespace="n", path="/s/{a}/{b}")
    assert route.key(a="x:y", b="z") != route.key(a="x", b="y:z")
    assert route.key(a='x","y', b="z") != route.key(a="x", b="y")


def test_long_values_are_hashed_but_keep_their_namespace() -> None:
    route = CachedRoute(name="s", namespace="n", path="/s/{a}")
    key = route.key(a="x" * 1000)
    assert key.startswith("n:s:#")
    assert len(key) < 60
    assert key != route.key(a="x" * 999)


def test_starlette_convertors_are_matched_exactly() -> None:
    route = CachedRoute(name="r", namespace="n", path="/items/{id:int}", path_params={"id": int})
    assert route.regex.match("/items/+7") is None  # Starlette's int convertor is [0-9]+
    assert request_key(route, "/items/007") == route.key(id=7)
    assert route.regex.match("/items/7/") is None


def test_route_declarations_are_validated() -> None:
    with pytest.raises(ValueError, match="not in the template"):
        CachedRoute(name="r", namespace="n", path="/items/{id}", path_params={"idx": int})
    with pytest.raises(ValueError, match="must match"):
        CachedRoute(name="r r", namespace="n", path="/items")
    with pytest.raises(TypeError, match="unsupported parameter type"):
        CachedRoute(name="r", namespace="n", path="/items", query_params={"x": 3})
    with pytest.raises(TypeError, match="needs path parameter"):
        MESSAGE.key()
    with pytest.raises(TypeError, match="has no parameters"):
        MESSAGE.key(id=1, other=2)


def test_matcher_prefers_static_templates_and_skips_unrelated_paths() -> None:
    static = CachedRoute(name="stats", namespace="messages", path="/api/v1/messages/stats")
    matcher = RouteMatcher([MESSAGE, static, LISTING])
    found = matcher.match("/api/v1/messages/stats")
    assert found is not None
    assert found[0] is static
    found = matcher.match("/api/v1/messages/3")
    assert found is not None
    assert found[0] is MESSAGE
    assert matcher.match("/api/v1/users/3") is None
    with pytest.raises(ValueError, match="two cached routes"):
        RouteMatcher([MESSAGE, MESSAGE])


def test_vary_headers_make_variants() -> None:
    route = CachedRoute(name="r", namespace="n", path="/r", vary=("Accept-Language",))
    en = route.variant([(b"accept-language", b"en"), (b"host", b"x")])
    fr = route.variant([(b"accept-language", b"fr")])
    assert en != fr
    assert en == route.variant([(b"accept-language", b"en")])
    assert MESSAGE.variant([(b"accept-language", b"en")]) == ""


def test_make_key_sorts_parameters_and_refuses_objects() -> None:
    assert make_key("messages", "total", user_id=5, a=None) == make_key(
        "messages", "total", a=None, user_id=5
    )
    assert make_key("messages", "total", user_id=5) != make_key("messages", "total", user_id="5")
    with pytest.raises(TypeError, match="scalars"):
        make_key("messages", "total", user=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="namespace"):
        make_key("bad:ns", "total")


def test_converters() -> None:
    assert to_int("-0") == 0
    assert to_int(str(2**63 - 1)) == 2**63 - 1
    with pytest.raises(ValueError, match="64-bit"):
        to_int(str(2**63))
    assert to_float("1e3") == to_float("1000") == 1000.0
    with pytest.raises(ValueError, match="finite"):
        to_float("nan")
    assert to_bool("On") is True
    assert to_bool("f") is False
    with pytest.raises(ValueError, match="boolean"):
        to_bool("2")
    value = uuid.uuid4()
    assert to_uuid(value.hex) == to_uuid(str(value).upper()) == str(value)
    with pytest.raises(ValueError, match="UUID"):
        to_uuid("urn:uuid:" + str(value))
