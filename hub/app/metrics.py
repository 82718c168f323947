"""All the metrics of one hub process, in one registry that `/metrics` serves."""

from __future__ import annotations

from hub.app.multiprocess_metrics import WorkersRegistry, shared_directory
from hub.gate.metrics import GateMetrics
from hub.ingest.metrics import IngestMetrics
from hub.poll.metrics import PollMetrics


class HubMetrics(IngestMetrics):
    """The ingest path's metrics, and the gate's and the poller's in the same registry; in a worker of
    `run --workers N`, a registry that collects every worker's (hub.app.multiprocess_metrics)."""

    def __init__(self) -> None:
        super().__init__()
        if (directory := shared_directory()) is not None:
            self.registry = WorkersRegistry.adopting(self.registry, directory)
        self.gate = GateMetrics(self.registry)
        self.poll = PollMetrics(self.registry)
