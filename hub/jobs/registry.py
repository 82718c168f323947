"""The job kinds, by name: a new kind is one module and one line here."""

from __future__ import annotations

from collections.abc import Mapping

from hub.jobs.kind import JobKind
from hub.jobs.redrive import Redrive
from hub.jobs.replay import Replay
from hub.jobs.retry_rejected import RetryRejected

KINDS: Mapping[str, JobKind] = {kind.name: kind for kind in (Replay(), Redrive(), RetryRejected())}
