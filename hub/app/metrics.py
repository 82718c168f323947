"""All the metrics of one hub process, in one registry that `/metrics` serves."""

from __future__ import annotations

from hub.gate.metrics import GateMetrics
from hub.ingest.metrics import IngestMetrics
from hub.poll.metrics import PollMetrics


class HubMetrics(IngestMetrics):
    """The ingest path's metrics, and the gate's and the poller's in the same registry."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = GateMetrics(self.registry)
        self.poll = PollMetrics(self.registry)
