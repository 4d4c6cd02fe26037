"""What the benchmarks share: the two clocks every figure is read from, and the machine's name."""

from __future__ import annotations

import platform
import time
from pathlib import Path


def clock() -> tuple[float, float]:
    """``(wall seconds, process CPU seconds)`` now."""
    return time.perf_counter(), time.process_time()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
