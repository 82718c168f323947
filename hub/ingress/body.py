"""Read a request body under a cap, before and after inflating it.

aiohttp's own decompression is off for the ingress (see `app.py`): it does not notice a gzip
stream cut before its trailer, and a decode error while it drains a body breaks the keep-alive
connection. Here the body is inflated with zlib under the same cap (a compression bomb stops at
the cap, never allocating more than it), and only a stream that ends cleanly, with nothing after
its end, is accepted.
"""

from __future__ import annotations

import zlib

from aiohttp import web

from adapters.errors import PayloadError
from hub.errors import BodyTooLarge, UnsupportedEncoding
from hub.ingress.deadlines import within_body_deadline

CHUNK = 64 * 1024
IDENTITY = frozenset({"", "identity"})
WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 15}
"""zlib window bits: 31 reads a gzip container, 15 a zlib one (HTTP `deflate`)."""


async def read_capped_body(request: web.Request, limit: int) -> bytes:
    """The body as the provider signed it (inflated), or BodyTooLarge once it passes `limit` bytes
    (BodyTimeout once the body deadline passes)."""
    return await within_body_deadline(request, _read_capped(request, limit))


async def _read_capped(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in IDENTITY:
        return await _read_plain(request, limit)
    if encoding not in WBITS:
        raise UnsupportedEncoding(encoding)
    return await _read_inflated(request, limit, zlib.decompressobj(WBITS[encoding]))


async def _read_plain(request: web.Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        if len(body) + len(chunk) > limit:
            raise BodyTooLarge(limit)
        body += chunk
    return bytes(body)


async def _read_inflated(request: web.Request, limit: int, inflater: zlib._Decompress) -> bytes:
    body = bytearray()
    received = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge(limit)
        if inflater.eof:
            raise PayloadError("bad_encoding", "data follows the end of the compressed stream")
        try:
            body += inflater.decompress(chunk, limit + 1 - len(body))
        except zlib.error:
            raise PayloadError("bad_encoding", "the body is not valid for its Content-Encoding") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise BodyTooLarge(limit)
    if not inflater.eof or inflater.unused_data:
        raise PayloadError("bad_encoding", "the compressed stream is truncated or followed by data")
    return bytes(body)
