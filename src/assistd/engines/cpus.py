"""How many CPUs this process may use: the CPUs its affinity mask allows, capped by its cgroup's CPU quota.

`os.cpu_count()` counts the machine's CPUs, and llama-cpp-python decodes with half of them by default; in a
container or under `taskset` both guesses are wrong. The local engine sizes its threads with `usable_cpus()`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """The CPUs this process may run on, at most its cgroup quota (rounded up); at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks on this platform
        count = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(count, 1)


def cgroup_cpu_quota(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPUs' worth of time the process's cgroup may use (cgroup v2 `cpu.max`, or v1 CFS quota); None when
    there is no limit or no cgroup to read."""
    for directory in _cgroup_directories(cgroup_root, proc_cgroup):
        try:
            quota, period = (directory / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        except (OSError, ValueError):
            pass
        try:
            quota_us = int((directory / "cpu.cfs_quota_us").read_text())
            period_us = int((directory / "cpu.cfs_period_us").read_text())
            return None if quota_us <= 0 else quota_us / period_us
        except (OSError, ValueError):
            continue
    return None


def _cgroup_directories(cgroup_root: Path, proc_cgroup: Path) -> list[Path]:
    """Where the process's CPU controller may be: its own cgroup (v2 path, v1 `cpu` path), then the root."""
    found = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":
            found.append(cgroup_root / relative)
        elif "cpu" in controllers.split(","):
            found.append(cgroup_root / "cpu" / relative)
            found.append(cgroup_root / controllers / relative)
    return [*found, cgroup_root, cgroup_root / "cpu"]
