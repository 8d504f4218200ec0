"""Where a task's time goes: named phases, summed per thread while someone records them.

    with record() as seconds:            # {} -> {"prefill": 0.08, "decode": 2.1, "codec decode": 0.3, ...}
        ag.render_midi("sketch.mid")
    with phase("write"):                 # anywhere: free when nothing records (the CLI, the studio)
        audio.save(path, wav, sr)

The generation code marks its phases (the token loop's prefill and decode steps, the codec's encode
and decode); `audiogen bench` records them per task. On CUDA a phase synchronises the device at its
ends while something records, so queued kernels are charged to the phase that launched them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

_local = threading.local()


def _sync() -> None:
    import sys

    torch = sys.modules.get("torch")  # never import torch here: only a caller that uses it can have launched work
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Add the block's wall time to `name` in the innermost `record()` of this thread (nothing when none)."""
    seconds = getattr(_local, "seconds", None)
    if seconds is None:
        yield
        return
    _sync()
    start = time.perf_counter()
    try:
        yield
    finally:
        _sync()
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start


@contextlib.contextmanager
def record() -> Iterator[dict[str, float]]:
    """Collect this thread's phases inside the block into the dict it yields (phase -> seconds)."""
    previous = getattr(_local, "seconds", None)
    _local.seconds = seconds = {}
    try:
        yield seconds
    finally:
        _local.seconds = previous


__all__ = ["phase", "record"]
