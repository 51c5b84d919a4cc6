"""Schemathesis hooks for the fuzz suite: test data the schema's formats cannot describe."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import strategies as st

# `format: idn-email` is RFC 6531 syntax; the service's identity rule (docs/email-identity.md) also
# refuses special-use domains (.test, .localhost, ...) and compatibility characters, which no
# JSON Schema keyword states. Positive cases get addresses that rule accepts; negative and
# coverage cases (wrong types, lengths, non-strings) are still generated from the schema.
_LOCAL = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,30}[a-z0-9]", fullmatch=True).filter(
    lambda local: ".." not in local
)
_DOMAIN = st.sampled_from(
    ["example.com", "mail.example.org", "floodgate.dev", "xn--bcher-kva.de", "bücher.de"]
)
_ADDRESSES = st.builds("{}@{}".format, _LOCAL, _DOMAIN)
schemathesis.openapi.format("email", _ADDRESSES)
schemathesis.openapi.format("idn-email", _ADDRESSES)


@schemathesis.hook
def before_load_schema(context: schemathesis.HookContext, raw_schema: dict[str, Any]) -> None:
    """Let the stateful phase post messages for the users it created.

    The document links each 201 to its own item operations; a link that fills one field of
    another operation's body (`user_id`) is a schemathesis extension (a partial `requestBody`
    merged into the generated one), so it lives here rather than in the served document.
    """
    users = raw_schema["paths"]["/api/v1/users"]["post"]["responses"]["201"]
    operations = raw_schema["paths"]["/api/v1/messages"]
    users.setdefault("links", {})["PostMessageForUser"] = {
        "operationId": operations["post"]["operationId"],
        "requestBody": {"user_id": "$response.body#/id"},
    }
    users["links"]["ListMessagesOfUser"] = {
        "operationId": operations["get"]["operationId"],
        "parameters": {"query.user_id": "$response.body#/id"},
    }
