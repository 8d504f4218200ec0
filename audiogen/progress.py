"""One progress bar style for all long work: tqdm on stderr with ETA; `--quiet` turns it off."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def bar(total: int | float | None, desc: str, *, quiet: bool = False, unit: str = "it", initial: int = 0) -> tqdm:
    return tqdm(
        total=total, desc=desc, unit=unit, initial=initial, disable=quiet, file=sys.stderr,
        dynamic_ncols=True, smoothing=0.1, leave=True,
    )
