"""How many CPU threads inference uses (decode loops, prefill): all of torch's while the machine
is idle, fewer while other processes keep cores busy.

    with threads.fitted() as refit:            # the count fits the load now; restored at the end
        for chunk in ...:
            refit()                            # reads the load at most every INTERVAL s, sets the count

Why: OpenMP and oneDNN split each operation evenly over their threads and then wait for the slowest.
When another process holds a core, the thread that shares it runs only in the scheduler's slices
(milliseconds) while our operations last microseconds, so every operation waits for it. Measured on the
2-core machine with one busy-looping process beside us (`audiogen bench --busy`; README, "Busy machines"):
the default LM's decode at batch 16 went from 205 steps/s idle to 42 on two threads, and ran 151 on one.

How: /proc/stat's busy time minus this process's own CPU time (os.times, all its threads) over the time
since the last reading is what other processes used, in cores. A core counts as taken from half a core
of others' use. Niced processes count as much as any: they yield the core when our threads run, but
our threads sleep between operations, and each wake-up waits for the scheduler to hand the core back
(two `nice -n 19` processes beside us slowed that batch-16 decode to 7 steps/s on two threads; one
thread made 128). Linux only; elsewhere, or when /proc/stat cannot be read, the count stays as it is.

What a seed fixes: the tokens do not depend on the thread count (the decode products split rows over
threads, never one sum; tests/test_threads.py). The codec's small convolutions do round differently on
one thread than on two (up to 1e-7, which can move a 16-bit sample by one step), so the codec does not
adapt: it keeps the count it is given, and a seeded WAV is bitwise the same on a busy machine as on an
idle one (it adapted until 2026-11-27, when that made a reproducibility test flaky). Training keeps its count
(`--train.threads`), so resumed runs stay bitwise exact; it says so when it starts on a busy machine.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator

from .errors import AudiogenError

INTERVAL = 0.5  # seconds between readings: /proc/stat counts in 10 ms ticks, so shorter windows get coarse
MIN_WINDOW = 0.1  # a reading this soon after the last one keeps the count as it is
ENV = "AUDIOGEN_ADAPTIVE_THREADS"
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def adaptive() -> bool:
    """Whether decode loops adapt their thread count (`AUDIOGEN_ADAPTIVE_THREADS`: 1, the default, or 0)."""
    raw = os.environ.get(ENV, "1").strip()
    if raw not in ("0", "1"):
        raise AudiogenError(f"environment variable {ENV}={raw!r} must be 0 or 1")
    return raw == "1"


def read_stat(text: str | None = None) -> tuple[float, int] | None:
    """(seconds of CPU time all processes spent busy, number of CPUs) from /proc/stat, or None where unreadable.

    Busy is user + nice + system + irq + softirq + steal (a hypervisor's steal takes a core as surely as
    a process)."""
    if text is None:
        try:
            with open("/proc/stat") as f:
                text = f.read()
        except OSError:
            return None
    lines = text.splitlines()
    try:
        fields = [int(v) for v in lines[0].split()[1:]]
    except (IndexError, ValueError):
        return None
    if not lines[0].startswith("cpu ") or len(fields) < 4:
        return None
    user, nice, system = fields[:3]
    irq, softirq, steal = (fields[5:8] + [0, 0, 0])[:3]
    busy = user + nice + system + irq + softirq + steal
    cpus = sum(1 for line in lines[1:] if line.startswith("cpu") and line[3:4].isdigit())
    return busy / _TICK, max(1, cpus)


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def threads_for(others: float, cpus: int, ceiling: int) -> int:
    """Threads to use when other processes use `others` cores of `cpus`: the cores left, rounded, within 1..ceiling."""
    free = cpus - others
    return max(1, min(ceiling, math.floor(free + 0.5)))


class LoadMonitor:
    """Cores other processes used between readings. One per process (`monitor()`), so each decode loop
    starts from what the last one saw instead of from a fresh window on every thread."""

    def __init__(self, stat: Callable[[], tuple[float, int] | None] = read_stat):
        self._stat = stat
        self.others: float | None = None  # cores others used in the last window (None: not read yet)
        self.cpus = 1
        self._last = self._reading()

    def _reading(self) -> tuple[float, float, float] | None:
        stat = self._stat()
        if stat is None:
            return None
        self.cpus = stat[1]
        return time.monotonic(), stat[0], own_cpu_seconds()

    def read(self) -> float | None:
        """Others' cores since the previous reading; the previous figure while that is under MIN_WINDOW old."""
        if self._last is None:
            return None
        reading = self._reading()
        if reading is None:
            return self.others
        wall = reading[0] - self._last[0]
        if wall >= MIN_WINDOW:
            self.others = max(0.0, (reading[1] - self._last[1]) - (reading[2] - self._last[2])) / wall
            self._last = reading
        return self.others


_monitor: LoadMonitor | None = None


def monitor() -> LoadMonitor:
    global _monitor
    if _monitor is None:
        _monitor = LoadMonitor()
    return _monitor


class Governor:
    """Sets torch's thread count to fit the machine's load, re-read at most every `interval` seconds.

    `ceiling` is the most threads it ever sets (the count the loop started with: OMP_NUM_THREADS,
    `torch.set_num_threads` or torch's default)."""

    def __init__(self, ceiling: int, *, interval: float = INTERVAL, load: LoadMonitor | None = None):
        self.ceiling, self.interval = max(1, ceiling), interval
        self.load = load if load is not None else monitor()
        self.threads = self.ceiling
        self._next = 0.0  # the first call reads at once

    def __call__(self) -> int:
        """Read the load if it is time, set the thread count that fits it; the count in use."""
        now = time.monotonic()
        if now < self._next:
            return self.threads
        self._next = now + self.interval
        others = self.load.read()
        if others is None:
            return self.threads
        threads = threads_for(others, self.load.cpus, self.ceiling)
        if threads != self.threads:
            import torch

            torch.set_num_threads(threads)
            self.threads = threads
        return threads


def current() -> int:
    """The thread count in use, left as it is (the refit of a loop whose count is fixed)."""
    import torch

    return torch.get_num_threads()


@contextlib.contextmanager
def fitted() -> Iterator[Callable[[], int]]:
    """Within the block torch's thread count fits the machine's load (read at entry); long work calls the
    yielded `refit()` now and then (each step or chunk: it reads at most every INTERVAL s). The count the
    block started with is the ceiling, and is restored at its end."""
    import torch

    before = torch.get_num_threads()
    refit = Governor(before) if adaptive() else current
    refit()
    try:
        yield refit
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


monitor()  # the first window starts at import (model loading, before the first loop)
