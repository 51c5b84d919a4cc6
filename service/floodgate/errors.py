"""Domain-neutral outcomes of data functions; the web edge maps them to problem types once.

Data functions raise these instead of HTTP problems, so they say what happened (no such row, a
uniqueness conflict, a reference to a missing row) and the edge decides how it is answered
(`floodgate.web.problems`). Any domain uses the same three.
"""

from __future__ import annotations


class DomainError(Exception):
    """A request the data cannot satisfy; `detail` is shown to the client as is."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFoundError(DomainError):
    """The row the request names does not exist."""


class ConflictError(DomainError):
    """The change would break a uniqueness rule (e.g. a second user with the same email)."""


class UnknownReferenceError(DomainError):
    """A field of the request body names a row that does not exist (a foreign key)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
