"""Metrics across the workers of `run --workers N`: one scrape of `/metrics` on the shared admin port
answers for every worker (Prometheus multiprocess mode).

The supervisor gives its workers a per-run directory, `HUB_DATA_DIR/metrics`, emptied when it starts
(`prepare`), in `PROMETHEUS_MULTIPROC_DIR`. prometheus_client reads that variable when it is first
imported, so in a worker every counter, histogram and gauge keeps its value in a memory-mapped file of
that directory, one per process, and whichever worker accepts the scrape reads them all
(`WorkersRegistry`): counters and histograms are summed over every worker that ran since the
supervisor started (a restarted worker's counts stay, so the totals never go back), and gauges are
given per worker with a `pid` label. A worker that exits has its gauges removed (`forget_worker`).
What no file holds (a gauge whose value a function computes, a custom collector) is collected from
the worker that answers, as in a single process.

Why files rather than the supervisor scraping its workers: the workers share the admin port
(SO_REUSEPORT), so the supervisor cannot address one of them, and files need no extra listener, no
request fan-out at scrape time, and keep the counts of a worker that died.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's own variable: set in a worker's environment, its metrics live in that directory."""


def run_directory(data_dir: Path) -> Path:
    """Where the workers of the supervisor holding `data_dir` keep their metrics."""
    return data_dir / "metrics"


def prepare(data_dir: Path) -> Path:
    """The run's metrics directory, emptied: counts of an earlier run would be summed into this one's."""
    directory = run_directory(data_dir).resolve()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def forget_worker(directory: Path, pid: int) -> None:
    """Remove the gauges of a worker that exited (its counters and histograms stay in the sums)."""
    for path in directory.glob(f"gauge_*_{pid}.db"):
        path.unlink(missing_ok=True)


def shared_directory() -> Path | None:
    """This process's shared metrics directory: set when it is a worker of `run --workers N`."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


class WorkersRegistry(CollectorRegistry):
    """A registry whose collection is every worker's: the shared files, plus what only this process
    knows (function gauges, custom collectors), which replaces a file-backed family of the same name."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    @classmethod
    def adopting(cls, registry: CollectorRegistry, directory: Path) -> WorkersRegistry:
        """A WorkersRegistry holding the collectors already registered in `registry`.

        prometheus_client has no public list of a registry's collectors; `_collector_to_names` is
        the one it keeps (stable since 0.4).
        """
        adopted = cls(directory)
        for collector in list(registry._collector_to_names):
            adopted.register(collector)
        return adopted

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            collectors = list(self._collector_to_names)
        own = [family for collector in collectors if not _file_backed(collector) for family in collector.collect()]
        names = {family.name for family in own}
        for family in MultiProcessCollector(None, str(self.directory)).collect():  # type: ignore[no-untyped-call]
            if family.name not in names:
                yield family
        yield from own


def _file_backed(collector: Collector) -> bool:
    """A metric whose values prometheus_client keeps in the shared files: any metric, but a gauge set
    with `set_function` (the function, held in this process only, replaces its samples)."""
    return isinstance(collector, MetricWrapperBase) and "_child_samples" not in vars(collector)
