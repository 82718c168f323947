"""Traces: OpenTelemetry spans as an optional extra, and the trace fields of every log line.

The one module that knows OpenTelemetry. Off (HUB_TRACING=off, the default) or without the `otel`
extra, nothing of OpenTelemetry is imported and `span` returns a no-op: the hot path pays a call and
a context manager's enter and exit. On (`configure`, once per process), spans go to a TracerProvider
of the hub's own (not the global one, which a library may have set) through a batch processor.

W3C trace context crosses processes as text: a webhook's `traceparent` header (kept in the
envelope by hub.ingest.ingestor.traceparent_for), the envelope's `traceparent` attribute read by the
gate, and the `traceparent` header of a dispatch request. `span(name, parent)` continues such a
context, and its `traceparent` is the one to hand on: the span's own when tracing is on, else
`parent` unchanged (so a target still receives the event's trace id).

Spans carry names and ids only (tenant, connector, event id, route) and statuses, never a secret, a
header value or a signature; an exception becomes the span's error status with its type's name,
not its message (which may quote input).

`logged` binds trace id, tenant, connector and event id to the current context (contextvars: the
request's or the message's task and the tasks it starts); hub.app.logs adds `log_fields()` to every
record, with tracing on or off.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger(__name__)

Mode = Literal["off", "otlp", "console"]
SERVICE_NAME = "connector-hub"
OTLP_TRACES_PATH = "/v1/traces"
"""Appended to HUB_OTLP_ENDPOINT, as OpenTelemetry appends it to OTEL_EXPORTER_OTLP_ENDPOINT."""
ATTRIBUTE_PREFIX = "hub."
STATUS_ATTRIBUTE = "http.response.status_code"
Attribute = str | int


class Trace:
    """A span as its caller sees it; this base is the no-op one (tracing off)."""

    __slots__ = ("_parent",)

    def __init__(self, parent: str | None) -> None:
        self._parent = parent

    @property
    def traceparent(self) -> str | None:
        """The W3C context to hand on (an envelope's, a dispatch request's header)."""
        return self._parent

    def set(self, name: str, value: Attribute) -> None:
        """Add `hub.<name>` to the span."""

    def status(self, code: int) -> None:
        """Record an HTTP status (an error status from 500 on)."""

    def error(self, reason: str) -> None:
        """Mark the span failed; `reason` must be safe to show (no secret, header value or input)."""

    def __enter__(self) -> Trace:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        return None


_NO_TRACE = Trace(None)


@dataclass(slots=True)
class LogFields:
    """What every log line of a request or a message carries."""

    trace_id: str | None
    tenant: str | None
    connector: str | None
    event_id: str | None = None


_LOG_FIELDS: ContextVar[LogFields | None] = ContextVar("hub_log_fields", default=None)


class logged:
    """Bind the log fields of one request or message for the block (nested blocks restore the outer)."""

    __slots__ = ("_token", "fields")

    def __init__(self, traceparent: str | None, tenant: str, connector: str, event_id: str | None = None) -> None:
        self.fields = LogFields(trace_id(traceparent), tenant, connector, event_id)
        self._token: Token[LogFields | None] | None = None

    def __enter__(self) -> LogFields:
        self._token = _LOG_FIELDS.set(self.fields)
        return self.fields

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._token is not None:
            _LOG_FIELDS.reset(self._token)


def log_fields() -> LogFields | None:
    """The fields bound by the innermost `logged` block around the caller, if any."""
    return _LOG_FIELDS.get()


def trace_id(traceparent: str | None) -> str | None:
    """The 32 hex digits of a W3C traceparent's trace id; None for no or a malformed one."""
    if traceparent is None or len(traceparent) != 55 or traceparent[2] != "-" or traceparent[35] != "-":
        return None
    return traceparent[3:35]


class _Tracing:
    """The OpenTelemetry side, made only when tracing is turned on."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import trace
        from opentelemetry.context import Context

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer(SERVICE_NAME)
        self.api = trace
        self.empty = Context()

    def parent_context(self, parent: str | None, fresh: bool) -> Context | None:
        """The context a span starts in: `parent`'s (a remote parent), a new trace, or the current one (None)."""
        if fresh:
            return self.empty
        if parent is None:
            return None
        try:
            version, trace_hex, span_hex, flags = parent.split("-")
            context = self.api.SpanContext(
                int(trace_hex, 16), int(span_hex, 16), is_remote=True, trace_flags=self.api.TraceFlags(int(flags, 16))
            )
        except ValueError:
            return self.empty
        if version != "00" or not context.is_valid:
            return self.empty
        return self.api.set_span_in_context(self.api.NonRecordingSpan(context))


class _Span(Trace):
    """A recording span, current for the block."""

    __slots__ = ("_attributes", "_context", "_detach", "_name", "_span", "_tracing")

    def __init__(
        self,
        tracing: _Tracing,
        name: str,
        parent: str | None,
        fresh: bool,
        attributes: dict[str, Attribute],
    ) -> None:
        super().__init__(parent)
        self._tracing = tracing
        self._name = name
        self._context = tracing.parent_context(parent, fresh)
        self._attributes = {ATTRIBUTE_PREFIX + key: value for key, value in attributes.items()}
        self._span: Span | None = None
        self._detach: Token[Context] | None = None

    @property
    def traceparent(self) -> str | None:
        context = self._span.get_span_context() if self._span is not None else None
        if context is None or not context.is_valid:
            return self._parent
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"

    def set(self, name: str, value: Attribute) -> None:
        if self._span is not None:
            self._span.set_attribute(ATTRIBUTE_PREFIX + name, value)

    def status(self, code: int) -> None:
        if self._span is not None:
            self._span.set_attribute(STATUS_ATTRIBUTE, code)
            if code >= 500:
                self.error(f"http {code}")

    def error(self, reason: str) -> None:
        if self._span is not None:
            self._span.set_status(self._tracing.api.Status(self._tracing.api.StatusCode.ERROR, reason))

    def __enter__(self) -> Trace:
        from opentelemetry import context as otel_context

        self._span = self._tracing.tracer.start_span(self._name, context=self._context, attributes=self._attributes)
        self._detach = otel_context.attach(self._tracing.api.set_span_in_context(self._span))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        from opentelemetry import context as otel_context

        assert self._span is not None
        assert self._detach is not None
        if kind is not None:  # the type's name only: an exception's message may quote what was received
            self._span.set_status(self._tracing.api.Status(self._tracing.api.StatusCode.ERROR, kind.__name__))
        otel_context.detach(self._detach)
        self._span.end()


_tracing: _Tracing | None = None


def span(name: str, parent: str | None = None, *, fresh: bool = False, **attributes: Attribute) -> Trace:
    """A span for a `with` block, child of `parent` (a W3C traceparent) or else of the current span.

    `fresh`: `parent` was made up here (no sender's context came), so with tracing on the span starts
    a new trace of its own instead. `attributes` become `hub.<name>`.
    """
    if _tracing is None:
        return _NO_TRACE if parent is None else Trace(parent)
    return _Span(_tracing, name, parent, fresh, attributes)


def enabled() -> bool:
    """Whether spans are recorded in this process."""
    return _tracing is not None


def configure(mode: Mode, otlp_endpoint: str | None = None) -> None:
    """Turn tracing on as HUB_TRACING says, once per process; `off` imports nothing.

    Without the `otel` extra, tracing stays off and one warning says how to install it.
    """
    if mode == "off":
        return
    try:
        processor = _processor(mode, otlp_endpoint)
    except ImportError:
        log.warning(
            "tracing stays off: HUB_TRACING=%s needs the otel extra (pip install 'connector-hub[otel]')",
            mode,
        )
        return
    install(processor)
    log.info("tracing on", extra={"exporter": mode})


def _processor(mode: Mode, otlp_endpoint: str | None) -> SpanProcessor:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if mode == "console":
        exporter = ConsoleSpanExporter()
    else:  # unset: OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, else http://localhost:4318
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = otlp_endpoint.rstrip("/") + OTLP_TRACES_PATH if otlp_endpoint else None
        exporter = OTLPSpanExporter(endpoint=endpoint)
    return BatchSpanProcessor(exporter)


def install(processor: SpanProcessor) -> None:
    """Record spans through `processor` from now on (a test's in-memory exporter, or `configure`'s)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    global _tracing
    shutdown()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(processor)
    _tracing = _Tracing(provider)


def shutdown() -> None:
    """Export what is pending and turn tracing off (at stop)."""
    global _tracing
    tracing, _tracing = _tracing, None
    if tracing is not None:
        tracing.provider.shutdown()
