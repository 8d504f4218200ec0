"""The one set of generation defaults and bounds: sampling (`SamplingConfig`) and the tasks' parameters.

    sampling = SamplingConfig(top_k=100, seed=7)      # every field defaults to the CLI's default
    sampling = SamplingConfig.from_overrides(sampling, temperature=0.8, seed=None)   # None keeps a field
    check_count(args.count, "--count"); check_stem(args.prefix, "--prefix")

`AudioGen`, the CLI's options and batch jobs all read these, so a default (and the range a value may
take) is stated once. Every check raises a one-line `AudiogenError` naming the field and the value.
No torch here: the CLI builds its parser from these values without loading anything heavy.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
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

# Bounds: past them a typo is likelier than a wish, and work or memory would grow without limit.
MAX_COUNT = 10_000  # outputs of one command (`loops`, `generate`) or one batch job
MAX_BATCH_SIZE = 256  # items generated together (memory grows with it; the count does not)
MAX_SEED = 2**63 - 1  # seeds are 0 .. 2**63 - 1; item i of a call uses seed + i (< 2**64, what torch takes)
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 100.0  # besides 0 (greedy): below 1e-3 scaled logits overflow
MAX_GUIDANCE = 100.0
MAX_NAME_BYTES = 200  # an output stem (batch job name, --prefix): room for "-0000.flac" and a temporary prefix


def show_value(value: Any) -> str:
    """A value for an error line: its repr, cut short (a 1 MB string is no help in a message)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_number(value: Any, what: str, *, low: float, high: float) -> float:
    """A finite real number in [low, high] (not a bool, not a string), or an AudiogenError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or not low <= value <= high:
        raise AudiogenError(f"{what} must be a number from {low:g} to {high:g}, got {show_value(value)}")
    return float(value)


def check_int(value: Any, what: str, *, low: int, high: int) -> int:
    """A whole number (not a bool or a float) in [low, high], or an AudiogenError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise AudiogenError(f"{what} must be a whole number from {low} to {high}, got {show_value(value)}")
    return int(value)


def check_count(count: Any, what: str = "count") -> int:
    return check_int(count, what, low=1, high=MAX_COUNT)


def check_batch_size(batch_size: Any, what: str = "batch_size") -> int:
    return check_int(batch_size, what, low=1, high=MAX_BATCH_SIZE)


def check_seed(seed: Any, what: str = "seed") -> int:
    return check_int(seed, what, low=0, high=MAX_SEED)


def check_temperature(temperature: Any, what: str = "temperature") -> float:
    real = isinstance(temperature, numbers.Real) and not isinstance(temperature, bool)
    if real and temperature == 0:
        return 0.0
    if real and 0 < temperature < MIN_TEMPERATURE:
        raise AudiogenError(f"{what} must be 0 (greedy) or from {MIN_TEMPERATURE:g} to {MAX_TEMPERATURE:g}, "
                            f"got {show_value(temperature)}")
    return check_number(temperature, what, low=0.0, high=MAX_TEMPERATURE)


def check_stem(name: Any, what: str = "name") -> str:
    """An output file stem: a non-empty plain name (no folder, no '..', no control characters, not hidden),
    at most MAX_NAME_BYTES bytes of UTF-8, so every output stays inside its output folder."""
    if not isinstance(name, str) or not name:
        raise AudiogenError(f"{what} must be a non-empty string, got {show_value(name)}")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise AudiogenError(f"{what} {show_value(name)} has control characters")
    if "/" in name or "\\" in name or name.startswith("."):
        raise AudiogenError(f"{what} {show_value(name)} must be a plain file name (no folders, not starting with '.')")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates
        raise AudiogenError(f"{what} {show_value(name)} is not valid text") from None
    if size > MAX_NAME_BYTES:
        raise AudiogenError(f"{what} is {size} bytes long, more than {MAX_NAME_BYTES}")
    return name


@dataclasses.dataclass
class SamplingConfig:
    temperature: float = 1.0  # 0 = greedy; else MIN_TEMPERATURE .. MAX_TEMPERATURE
    top_k: int = 250  # 0 = off
    top_p: float = 0.0  # 0 = off; applied after top_k; at most 1
    guidance: float = 3.0  # classifier-free guidance: toward the MIDI, or a continuation toward its seed; 1 = off
    seed: int = 0  # 0 .. MAX_SEED

    def validate(self, *, prefix: str = "sampling: ") -> None:
        """One-line `AudiogenError` for a value outside its domain (NaN, a string, a seed past 2**63 - 1, ...)."""
        check_temperature(self.temperature, f"{prefix}temperature")
        check_int(self.top_k, f"{prefix}top_k", low=0, high=2**31 - 1)
        check_number(self.top_p, f"{prefix}top_p", low=0.0, high=1.0)
        check_number(self.guidance, f"{prefix}guidance", low=0.0, high=MAX_GUIDANCE)
        check_seed(self.seed, f"{prefix}seed")

    @classmethod
    def from_overrides(cls, base: SamplingConfig | None = None, **overrides: Any) -> SamplingConfig:
        """`base` (or the defaults) with the fields given not None replaced; validated."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown sampling parameter {sorted(unknown)[0]!r}")
        cfg = dataclasses.replace(base or cls(), **{k: v for k, v in overrides.items() if v is not None})
        cfg.validate()
        return cfg

    @staticmethod
    def check_field(name: str, value: Any) -> None:
        """Validate one field's value alone (batch jobs check their fields before they run)."""
        dataclasses.replace(SamplingConfig(), **{name: value}).validate(prefix="")
