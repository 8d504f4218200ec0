"""One progress bar style for all long work: tqdm on stderr with ETA; `--quiet` turns it off.

    with observe(lambda desc, done, total: print(desc, done, total)):
        ag.render_midi("sketch.mid")      # every bar made in this thread also reports to the callback

`observe` lets a caller that is not a terminal (the web studio) follow the same bars the CLI draws,
quiet or not, without the generation code knowing who watches.

`startup(desc)` (the CLI, before it imports torch) puts a line on a terminal at once, so a command shows
that it runs in a fraction of a second instead of after the seconds that importing torch and loading a
model take; the first real bar replaces it, and `end_startup()` (an error, the command's end) clears it.
Only on a terminal: logs and pipes get the real bars alone, and an error stays one line everywhere.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator

from tqdm.auto import tqdm

Observer = Callable[[str, float, float | None], None]  # (desc, done, total or None)
_local = threading.local()  # per thread: the studio's worker observes its own job, not other threads' bars
_startup: tqdm | None = None


class _ObservedBar(tqdm):
    """A tqdm that also reports its count to an observer (also when disabled: quiet bars count too)."""

    def __init__(self, *args, observer: Observer, **kwargs):
        self._observer, self._desc, self._total = observer, kwargs.get("desc", ""), kwargs.get("total")
        self._done = kwargs.get("initial", 0) or 0
        super().__init__(*args, **kwargs)
        observer(self._desc, self._done, self._total)

    def update(self, n: float | None = 1):
        self._done += 1 if n is None else n
        self._observer(self._desc, self._done, self._total)
        return super().update(n)


@contextlib.contextmanager
def observe(observer: Observer) -> Iterator[None]:
    """Within the block, every `bar()` made in this thread calls `observer(desc, done, total)` as it moves."""
    previous = getattr(_local, "observer", None)
    _local.observer = observer
    try:
        yield
    finally:
        _local.observer = previous


def startup(desc: str, *, quiet: bool = False) -> None:
    """On a terminal (and not quiet): a line saying `desc` started, until the first `bar` or `end_startup`."""
    global _startup
    if quiet or _startup is not None or not sys.stderr.isatty():
        return
    _startup = tqdm(total=None, desc=f"{desc}: starting", bar_format="{desc} ...", file=sys.stderr,
                    leave=False, dynamic_ncols=True)


def startup_stage(stage: str) -> None:
    """Say on the start-up line (if one is up) what the command is doing now, e.g. "loading the model"."""
    if _startup is not None:
        _startup.set_description_str(f"{_startup.desc.split(':')[0]}: {stage}")


def end_startup() -> None:
    """Clear the start-up line (if any) from the terminal."""
    global _startup
    if _startup is not None:
        _startup.close()
        _startup = None


def bar(total: int | float | None, desc: str, *, quiet: bool = False, unit: str = "it", initial: int = 0) -> tqdm:
    end_startup()
    observer = getattr(_local, "observer", None)
    extra = {} if observer is None else {"observer": observer}
    return (tqdm if observer is None else _ObservedBar)(
        total=total, desc=desc, unit=unit, initial=initial, disable=quiet, file=sys.stderr,
        dynamic_ncols=True, smoothing=0.1, leave=True, **extra,
    )
