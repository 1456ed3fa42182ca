"""The local engine's thread count: the CPUs this process may use, capped by its cgroup's CPU quota."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistd.engines.cpus import cgroup_cpu_quota, usable_cpus


def _cgroup(tmp_path: Path, proc_lines: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    proc = tmp_path / "proc-cgroup"
    proc.write_text(proc_lines)
    return root, proc


@pytest.mark.parametrize(
    ("proc_lines", "files", "quota"),
    [
        ("0::/app\n", {"app/cpu.max": "150000 100000\n"}, 1.5),  # v2, the process's own cgroup
        ("0::/app\n", {"app/cpu.max": "max 100000\n"}, None),  # v2 without a limit
        ("0::/\n", {"cpu.max": "100000 100000\n"}, 1.0),  # v2 at the root (a container's view)
        (
            "4:cpu,cpuacct:/job\n",
            {"cpu,cpuacct/job/cpu.cfs_quota_us": "300000", "cpu,cpuacct/job/cpu.cfs_period_us": "100000"},
            3.0,
        ),
        ("1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),  # v1, no limit
        ("", {}, None),  # nothing to read
    ],
)
def test_the_cgroup_quota_is_read_from_v2_or_v1(tmp_path, proc_lines, files, quota) -> None:
    assert cgroup_cpu_quota(*_cgroup(tmp_path, proc_lines, files)) == quota


def test_usable_cpus_are_the_affinity_mask_capped_by_the_quota(tmp_path) -> None:
    allowed = len(os.sched_getaffinity(0))
    assert usable_cpus(*_cgroup(tmp_path, "0::/\n", {})) == allowed
    assert usable_cpus(*_cgroup(tmp_path / "half", "0::/\n", {"cpu.max": "50000 100000"})) == 1  # rounded up
    assert usable_cpus(*_cgroup(tmp_path / "many", "0::/\n", {"cpu.max": "6400000 100000"})) == allowed
