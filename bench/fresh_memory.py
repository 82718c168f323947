"""What new memory costs on this machine, for benchmarks whose servers read into new buffers.

nats-server reads a whole 8 MB message block into a buffer to serve a read its caches do not
hold. When that buffer is new memory, the read pays one page fault per 4 KiB page. On most hosts a
fault costs well under a microsecond. On a VM whose hypervisor takes freed guest memory back (Linux
free page reporting to a virtio-balloon device), the first touch of a reclaimed page also faults on
the host, about 10 µs here, so a block load into new memory costs ~25 ms instead of 1-4 ms.
`bench/history.py` prints these figures beside its latencies, so a reader can tell the two apart.
"""

from __future__ import annotations

import mmap
import subprocess
import sys
import time
from pathlib import Path

PAGE = 4096
PAGE_REPORTING = Path("/sys/module/page_reporting/parameters")


def first_touch_us(megabytes: int = 256) -> float:
    """Mean µs to touch one page of `megabytes` of anonymous memory this process never touched."""
    size = megabytes * 1024 * 1024
    region = mmap.mmap(-1, size)
    try:
        started = time.perf_counter()
        for offset in range(0, size, PAGE):
            region[offset] = 1
        elapsed = time.perf_counter() - started
    finally:
        region.close()
    return elapsed / (size // PAGE) * 1e6


def page_reporting() -> dict[str, int] | None:
    """The kernel's free page reporting settings (`min_free_ms`: how long a freed page stays the
    guest's before it is reported), or None where the kernel reports no free pages to a host."""
    if not PAGE_REPORTING.is_dir():
        return None
    settings = {}
    for name in ("min_free_ms", "page_reporting_order", "reported_kib"):
        try:
            settings[name] = int((PAGE_REPORTING / name).read_text().strip())
        except (OSError, ValueError):
            continue
    return settings


def prefault(gigabytes: float) -> float:
    """Touch and free `gigabytes` in a child process; seconds it took.

    The freed pages go back to the guest kernel's free lists, where the next allocations (the
    server's block buffers) find them. That only lasts where the guest keeps freed pages a while
    (`min_free_ms` above the measurement's length, or no page reporting at all)."""
    size = int(gigabytes * 1024**3)
    script = f"import mmap\nm = mmap.mmap(-1, {size})\nfor i in range(0, {size}, {PAGE}):\n    m[i] = 1\n"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True, timeout=600)
    return time.perf_counter() - started


def describe(first_touch: float, reporting: dict[str, int] | None) -> str:
    """One line for a benchmark's report."""
    line = f"first touch of new memory: {first_touch:.2f} µs per 4 KiB page"
    if reporting is None:
        return f"{line}; no free page reporting"
    hold = reporting.get("min_free_ms")
    return f"{line}; free page reporting on (a freed page is reported after {hold} ms)"
