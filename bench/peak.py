"""The peak RSS of this process alone.

Not `getrusage(RUSAGE_SELF).ru_maxrss`: on Linux a process started by fork and exec keeps its parent's high
water mark there, so every variant would report at least the bench runner's own peak. `VmHWM` belongs to the
process's own address space, which exec replaces.
"""

from pathlib import Path


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak RSS is measured on Linux only")


def reset_peak() -> None:
    """Start this process's peak RSS again from its current RSS (Linux's `clear_refs`), so each phase of a run
    reports its own peak."""
    Path("/proc/self/clear_refs").write_text("5")
