"""The composer: a symbolic music Transformer that writes MIDI (events -> tokens -> the LM's blocks).

    from audiogen.composer import compose, load_composer
    pm = compose(load_composer("runs/composer"), bars=8, style="folk", key="D", meter="3/4", bpm=120)

Modules: `vocab` (the REMI-like event vocabulary, keys, meters and the grammar), `events` (MIDI
<-> events), `data` (the event dataset from music21's corpus and MIDI folders), `model` (the
`Composer`: `audiogen.lm.model.LM` over one token stream), `generate` (constrained decoding:
`compose`), `metrics` (held-out NLL beside a bigram, in-key share, pitch-class distance, grid
share, self-similarity, loop transitions). Its training task for the shared loop is
`audiogen.training.composer`. Names are exported
lazily, so importing this package needs no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "compose": "generate", "compose_tokens": "generate", "load_composer": "generate",
    "write_composition": "generate", "Composer": "model", "ComposerConfig": "model",
    "build_dataset": "data", "EventData": "data",
    "composer_report": "metrics", "Vocab": "vocab", "midi_to_events": "events", "events_to_midi": "events",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'audiogen.composer' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
