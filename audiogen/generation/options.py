"""The one set of generation defaults: sampling (`SamplingConfig`) and the tasks' parameters.

    sampling = SamplingConfig(top_k=100, seed=7)      # every field defaults to the CLI's default
    sampling = SamplingConfig.from_overrides(sampling, temperature=0.8, seed=None)   # None keeps a field

`AudioGen`, the CLI's options and batch jobs all read these, so a default is stated once. No torch
here: the CLI builds its parser from these values without loading anything heavy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import AudiogenError

# The tasks' defaults (CLI options, batch job fields, `AudioGen` keywords).
LOOP_COUNT = 4
LOOP_BARS = 4
LOOP_BPM = 120.0
BEATS_PER_BAR = 4
LOOP_FORMATS = ("wav", "ogg", "flac")  # wav: smpl/acid chunks; ogg, flac: LOOPSTART/LOOPLENGTH
LOOP_FORMAT = "wav"
BATCH_SIZE = 4  # items generated together
CONTINUE_SECONDS = 10.0
FREE_SECONDS = 10.0
FREE_COUNT = 1


@dataclasses.dataclass
class SamplingConfig:
    temperature: float = 1.0  # 0 = greedy
    top_k: int = 250  # 0 = off
    top_p: float = 0.0  # 0 = off; applied after top_k
    guidance: float = 3.0  # classifier-free guidance scale (conditional models given cond); 1 = plain conditional
    seed: int = 0

    def validate(self) -> None:
        if self.temperature < 0:
            raise AudiogenError("sampling: temperature must not be negative")
        if self.top_k < 0:
            raise AudiogenError("sampling: top_k must not be negative")
        if not 0 <= self.top_p <= 1:
            raise AudiogenError("sampling: top_p must be in [0, 1]")
        if self.guidance < 0:
            raise AudiogenError("sampling: guidance must not be negative")

    @classmethod
    def from_overrides(cls, base: SamplingConfig | None = None, **overrides: Any) -> SamplingConfig:
        """`base` (or the defaults) with the fields given not None replaced; validated."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown sampling parameter {sorted(unknown)[0]!r}")
        cfg = dataclasses.replace(base or cls(), **{k: v for k, v in overrides.items() if v is not None})
        cfg.validate()
        return cfg
