"""`serve --reload` pickles uvicorn's config, the configured protocol class included, into the
reloader's child: the class must survive that with its limits."""

from __future__ import annotations

import io
import pickle
from multiprocessing.reduction import ForkingPickler

from floodgate.process.protocol import HeaderLimitedProtocol, header_limited_protocol


def test_a_configured_protocol_pickles_with_its_limits() -> None:
    cls = header_limited_protocol(max_header_bytes=4096, max_headers=12, header_timeout_s=2.5)
    for data in (pickle.dumps(cls), _forking_dump(cls)):
        again = pickle.loads(data)
        assert issubclass(again, HeaderLimitedProtocol)
        assert (again.max_header_bytes, again.max_headers, again.header_timeout_s) == (
            4096,
            12,
            2.5,
        )
        assert b"4096" in again._too_large


def _forking_dump(obj: object) -> bytes:
    buf = io.BytesIO()
    ForkingPickler(buf).dump(obj)
    return buf.getvalue()
