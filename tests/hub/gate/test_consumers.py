"""The gate's consumer settings and its filters for FastStream's known-harmless log lines."""

from __future__ import annotations

import logging

import pytest
from nats.js.api import AckPolicy, DeliverPolicy

from hub.gate.consumers import _faststream_logger, consumer_config


def test_consumers_never_give_up_and_ack_explicitly() -> None:
    config = consumer_config("hub-dispatch", "hub.invocations.>")
    assert config.max_deliver == -1  # waiting (NAK with delay) must never use up deliveries
    assert config.ack_policy is AckPolicy.EXPLICIT
    assert config.deliver_policy is DeliverPolicy.ALL
    assert (config.durable_name, config.filter_subject) == ("hub-dispatch", "hub.invocations.>")


def record(level: int, exc: BaseException | None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("hub.gate.faststream", level, __file__, 1, "Task-1 raised", None, exc_info)


@pytest.mark.parametrize(
    ("level", "exc", "kept"),
    [
        (logging.ERROR, TimeoutError(), False),  # nats-py's early fetch timeout, restarted by FastStream
        (logging.ERROR, ValueError("a real bug"), True),
        (logging.ERROR, None, True),
        (logging.INFO, TimeoutError(), True),
    ],
)
def test_only_the_early_fetch_timeout_is_muted(level: int, exc: BaseException | None, kept: bool) -> None:
    logger = _faststream_logger()
    assert logger is _faststream_logger()
    assert len(logger.filters) == 2  # installed once however many brokers start
    assert logger.filter(record(level, exc)) is kept


def test_the_supervisors_task_callback_line_is_dropped_and_its_warnings_kept() -> None:
    logger = _faststream_logger()
    chatter = logging.LogRecord(
        "hub.gate.faststream", logging.INFO, __file__, 1, "callback for Task-27 is being executed...", None, None
    )
    assert logger.filter(chatter) is False
    warning = logging.LogRecord("hub.gate.faststream", logging.WARNING, __file__, 1, "consumer restarted", None, None)
    assert logger.filter(warning) is True
