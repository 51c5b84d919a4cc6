"""Canonical cache keys: a namespace, a name and typed parameter values, never object reprs.

A key reads `namespace:name:<JSON of the values>` (`messages:message:[7]`). Values go through the
same conversion FastAPI applies to the declared parameter, so `/messages/007` and `/messages/7`
share one key. The converters here are deliberately *stricter* than pydantic: text they refuse is
simply not cached (the request goes to the app, which answers as it always would), whereas text they
accepted more loosely than the app could be served a cached 200 the app would have refused.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias

import orjson

Scalar: TypeAlias = str | int | float | bool | None
KeyValue: TypeAlias = Scalar | tuple[Scalar, ...]
Converter: TypeAlias = Callable[[str], Scalar]

MAX_KEY_PAYLOAD: Final = 160
_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")
_INT = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\Z"
)
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


def check_name(kind: str, value: str) -> str:
    """Namespaces, names and prefixes are plain tokens: keys split and glob-match unambiguously."""
    if not _NAME.match(value):
        raise ValueError(f"{kind} {value!r} must match [A-Za-z0-9_.-]+")
    return value


_INT64 = range(-(2**63), 2**63)


def to_int(text: str) -> int:
    if not _INT.match(text):
        raise ValueError(f"not an integer: {text!r}")
    value = int(text)
    # Beyond 64 bits no key can hold it (and no endpoint accepts it): not cached, the app answers.
    if value not in _INT64:
        raise ValueError(f"integer out of 64-bit range: {text!r}")
    return value


def to_float(text: str) -> float:
    if not _FLOAT.match(text):
        raise ValueError(f"not a finite decimal number: {text!r}")
    return float(text)


def to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def to_str(text: str) -> str:
    return text


def to_uuid(text: str) -> str:
    if not _UUID.match(text):
        raise ValueError(f"not a UUID: {text!r}")
    return str(uuid.UUID(text))


CONVERTERS: Final[Mapping[object, Converter]] = {
    int: to_int,
    float: to_float,
    bool: to_bool,
    str: to_str,
    uuid.UUID: to_uuid,
}

_MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class Param:
    """A declared request parameter: its type (or a converter), an optional default, list-ness.

    `default` must equal the endpoint's own default: a request without the parameter then shares the
    key of one that spells the default out. Leave it unset when unsure: absence is a key of its own.
    `many=True` is a list parameter (`?tag=a&tag=b`), kept in request order.
    """

    type: object = str
    default: object = _MISSING
    many: bool = False

    @property
    def converter(self) -> Converter:
        conv = CONVERTERS.get(self.type)
        if conv is not None:
            return conv
        if callable(self.type):
            return self.type
        raise TypeError(
            f"unsupported parameter type {self.type!r}: give int, str, float, bool, "
            "uuid.UUID or a converter (str) -> scalar that raises ValueError"
        )

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    def canonical(self, value: object) -> KeyValue:
        """The key value for a Python value (used by invalidation): `7`, `"007"` and `7.0`-free."""
        conv = self.converter
        if value is None:
            return () if self.many else None
        if self.many:
            if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
                raise TypeError("a many=True parameter takes a list or tuple")
            return tuple(conv(_text(item)) for item in value)
        return conv(_text(value))


def as_param(spec: object) -> Param:
    return spec if isinstance(spec, Param) else Param(spec)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float | uuid.UUID):
        return str(value)
    raise TypeError(
        f"cache key values must be str, int, float, bool or UUID, not {type(value).__name__}"
    )


def join_key(namespace: str, name: str, values: object) -> str:
    """`namespace:name:<json>`; long value lists are replaced by their digest to bound key size."""
    payload = orjson.dumps(values)
    if len(payload) > MAX_KEY_PAYLOAD:
        payload = b"#" + hashlib.blake2b(payload, digest_size=16).hexdigest().encode()
    return f"{namespace}:{name}:{payload.decode()}"


def make_key(namespace: str, name: str, /, **params: Scalar) -> str:
    """A canonical key for the value API (`make_key("messages", "total", user_id=5)`).

    Parameters are sorted by name; values must be JSON scalars (no object reprs sneak into keys).
    """
    check_name("namespace", namespace)
    check_name("name", name)
    items = []
    for param, value in sorted(params.items()):
        if value is not None and not isinstance(value, str | int | float | bool):
            raise TypeError(
                f"{param}: cache key values must be scalars, not {type(value).__name__}"
            )
        items.append((param, value))
    return join_key(namespace, name, items)
