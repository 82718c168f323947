"""Read a request body under a cap, before and after inflating it.

aiohttp inflates `Content-Encoding: gzip|deflate` bodies in bounded chunks as they are read, so
counting the bytes read caps the inflated size too: a compression bomb stops at the cap.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from adapters.errors import PayloadError
from hub.errors import BodyTooLarge

CHUNK = 64 * 1024


async def read_capped_body(request: web.Request, limit: int) -> bytes:
    """The (inflated) body, or BodyTooLarge as soon as it passes `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    body = bytearray()
    try:
        async for chunk in request.content.iter_chunked(CHUNK):
            if len(body) + len(chunk) > limit:
                raise BodyTooLarge(limit)
            body += chunk
    except RequestPayloadError:
        raise PayloadError("bad_encoding", "the body cannot be decoded with its Content-Encoding") from None
    return bytes(body)
