"""The composer: a decoder-only Transformer over event tokens, built from the language model.

    model = Composer(ComposerConfig(dim=128, num_layers=4))
    loss = model.loss(rows)                            # rows [B, S + 1] token ids; mean NLL per target
    model.setup_cache(1); logits = model.prefill(tokens)   # tokens [B, P] -> [B, V]; then decode_step
    model.save("runs/composer"); Composer.load("runs/composer")

The project keeps one Transformer: this is `audiogen.lm.model.LM` with one codebook whose "codes"
are the event vocabulary (`audiogen.composer.vocab`), so the blocks (RMSNorm pre-norm, rotary
attention with a sliding window, SwiGLU), the ring KV cache and the fast CPU / CUDA decode steps
are the LM's own. Conditioning (style, key, meter, tempo, bar count) is the header tokens at the
start of the sequence, so the LM's frame-aligned conditioning input stays off (`cond_features` 0)
and its pattern is "parallel" (with one codebook, no delay). The LM's extra input row
(`SPECIAL`) is never fed. The model folder is `config.json` (kind "composer", this config) +
`model.safetensors`, written with `audiogen.checkpoint` (fp16 with `half=True`: the bundled size).

`python -m pytest tests/composer/test_composer_training.py` exercises it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoint
from ..config import from_dict, to_dict
from ..errors import AudiogenError
from ..lm.model import LM, LMConfig
from .vocab import STYLES, USER_STYLE_SLOTS, Vocab

KIND = "composer"


@dataclasses.dataclass
class ComposerConfig:
    steps_per_quarter: int = 4  # the event grid (4: sixteenth notes; 12 also holds triplets)
    user_styles: list[str] = dataclasses.field(default_factory=list)  # labels of the user style slots
    dim: int = 192
    num_layers: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    context: int = 512  # attention window W in tokens (training rows are this long)
    dropout: float = 0.0
    rope_base: float = 10000.0
    norm_eps: float = 1e-5

    def validate(self) -> None:
        Vocab(self.steps_per_quarter)  # checks the grid
        if len(self.user_styles) > USER_STYLE_SLOTS:
            raise AudiogenError(f"model.user_styles: at most {USER_STYLE_SLOTS} user styles")
        clash = sorted(set(self.user_styles) & set(STYLES))
        if clash or len(set(self.user_styles)) != len(self.user_styles):
            raise AudiogenError(f"model.user_styles: labels must be new and distinct ({clash or self.user_styles})")
        self.lm_config().validate()

    @property
    def vocab(self) -> Vocab:
        return Vocab(self.steps_per_quarter)

    def lm_config(self) -> LMConfig:
        return LMConfig(num_codebooks=1, codebook_size=self.vocab.size, dim=self.dim, num_layers=self.num_layers,
                        num_heads=self.num_heads, mlp_ratio=self.mlp_ratio, context=self.context, pattern="parallel",
                        cond_features=0, cond_dropout=0.0, dropout=self.dropout, rope_base=self.rope_base,
                        norm_eps=self.norm_eps)

    @property
    def styles(self) -> list[str]:
        """Every style name the model knows, in slot order."""
        return list(STYLES) + list(self.user_styles)


class Composer(nn.Module):
    """`LM` over one stream of event tokens; see the module docstring."""

    def __init__(self, config: ComposerConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.vocab = config.vocab
        self.lm = LM(config.lm_config())
        self.meta: dict[str, Any] = {}

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def style_index(self, style: str) -> int:
        """Slot of a style name; unknown names are a user error."""
        styles = self.config.styles
        if style not in styles:
            raise AudiogenError(f"unknown style {style!r} (known: {', '.join(styles)})")
        return styles.index(style)

    # ------------------------------------------------------------------ training
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """`tokens [B, S]` -> logits `[B, S, V]` (position s predicts token s + 1)."""
        return self.lm(tokens[:, None, :])[:, 0]

    def token_nll(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`rows [B, S + 1]` -> (NLL of each target `[B, S]` in nats, mask of targets that count `[B, S]`).

        Targets that do not count: PAD (after a piece's end) and BOS (the start of the next packed
        crop, which nothing could predict).
        """
        inputs, targets = rows[:, :-1], rows[:, 1:]
        logits = self(inputs).float()
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        mask = (targets != self.vocab.pad) & (targets != self.vocab.bos)
        return nll.view(targets.shape) * mask, mask

    def loss(self, rows: torch.Tensor) -> torch.Tensor:
        """Mean NLL per counted target of `rows [B, S + 1]`."""
        nll, mask = self.token_nll(rows)
        return nll.sum() / mask.sum().clamp_min(1)

    # ------------------------------------------------------------------ inference (the LM's KV cache)
    def setup_cache(self, batch_size: int, *, device=None) -> None:
        self.lm.setup_cache(batch_size, device=device)

    def clear_cache(self) -> None:
        self.lm.clear_cache()

    def decode_threads(self):
        return self.lm.decode_threads()

    @torch.inference_mode()
    def prefill(self, tokens: torch.Tensor, *, start_position: int = 0) -> torch.Tensor:
        """`tokens [B, P]` at positions start.., filling the cache -> logits of the last `[B, V]`."""
        return self.lm.prefill(tokens[:, None, :], start_position=start_position)[:, 0]

    @torch.inference_mode()
    def decode_step(self, tokens: torch.Tensor, *, position: int) -> torch.Tensor:
        """`tokens [B, 1]` at `position` -> logits `[B, V]` for position + 1."""
        return self.lm.decode_step(tokens[:, None, :], position=position)[:, 0]

    # ------------------------------------------------------------------ model folders
    def save(self, directory: str | os.PathLike, *, half: bool = False, extra: dict[str, Any] | None = None) -> Path:
        """config.json + model.safetensors (float16 weights with `half`: half the size, loads as float32)."""
        state = self.state_dict()
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        return checkpoint.save_model(directory, kind=KIND, config=to_dict(self.config), state_dict=state,
                                     extra={"vocab": self.vocab.fingerprint, **(extra or {})})

    @classmethod
    def load(cls, directory: str | os.PathLike, *, device: str | torch.device = "cpu") -> Composer:
        """The composer of a model folder, float32, in eval mode; `model.meta` holds config.json's other entries."""
        meta = checkpoint.read_config(directory, kind=KIND)
        model = cls(from_dict(ComposerConfig, meta["config"], "model"))
        if meta.get("vocab") != model.vocab.fingerprint:
            raise AudiogenError(f"{directory}: made with another event vocabulary (this audiogen cannot read it)")
        checkpoint.load_into(model, directory)
        model.meta = {k: v for k, v in meta.items() if k not in ("config", "format_version", "kind")}
        return model.to(device).eval()
