"""Structured logging: one JSON object per line by default, or readable console lines.

Log calls pass context with `extra={...}`; the formatter includes every extra field. Callers never
pass secrets, signatures or bodies: the ingress logs reasons and ids only.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import orjson
from aiohttp.http_exceptions import HttpProcessingError

from hub.runtime.tracing import log_fields

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """`{"ts": ..., "level": ..., "logger": ..., "msg": ..., <extras>}`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    """`12:00:00 INFO  hub.app.serve  started  key=value ...`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.levelname:<7} {record.name}  "
        line += f"{record.getMessage()}  {fields}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class TraceFieldsFilter(logging.Filter):
    """Adds `trace_id`, `tenant`, `connector` and `event_id` to every record logged while a request or a
    message is handled (hub.runtime.tracing.logged); a field the call passes itself is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = log_fields()
        if fields is not None:
            values = record.__dict__
            values.setdefault("trace_id", fields.trace_id)
            values.setdefault("tenant", fields.tenant)
            values.setdefault("connector", fields.connector)
            values.setdefault("event_id", fields.event_id)
        return True


MALFORMED_LOG_INTERVAL_S = 10.0
"""At most one line per this long about malformed requests; the next line counts those left out."""


class MalformedRequestFilter(logging.Filter):
    """Rewrites aiohttp's record of a request it could not parse to one line without its content.

    aiohttp (`aiohttp.server`, `RequestHandler.handle_error`) logs such a request at ERROR with a
    traceback whose message quotes the offending bytes: a malformed `Authorization: Bearer ...`,
    `X-Hub-Signature-256` or `Stripe-Signature` header would be written to the log verbatim, and a
    flood of them would write a traceback each. Here the record keeps the error's class, status and
    the client's address, drops the exception and its text, and is let through at most once per
    `interval_s`, saying how many were suppressed since the last one.
    """

    def __init__(self, interval_s: float = MALFORMED_LOG_INTERVAL_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._next_at = 0.0
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        with self._lock:
            now = time.monotonic()
            if now < self._next_at:
                self._suppressed += 1
                return False
            self._next_at = now + self.interval_s
            suppressed, self._suppressed = self._suppressed, 0
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.msg, record.args = "malformed request refused", ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.__dict__.update(error=type(error).__name__, status=error.code, remote=str(remote), suppressed=suppressed)
        return True


def configure_logging(level: str, fmt: str) -> None:
    """Send every log record to stderr in the chosen format; aiohttp's records of malformed requests
    only without their content and rate-limited (`MalformedRequestFilter`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    handler.addFilter(TraceFieldsFilter())  # on the handler: it sees the records of every logger
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access", "nats"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    server = logging.getLogger("aiohttp.server")
    for installed in [f for f in server.filters if isinstance(f, MalformedRequestFilter)]:
        server.removeFilter(installed)
    server.addFilter(MalformedRequestFilter())
