"""Language-model training task: `audiogen train lm RECIPE.toml -o RUN [--section.key=value ...]`.

Trains `audiogen.lm.model.LM` on a token dataset (`audiogen tokenize`) with the shared loop in
`audiogen/training/loop.py`: AdamW, warm-up + cosine, clipping, accumulation, bf16 autocast on CUDA,
`torchrun` DDP, atomic checkpoints and exact resume. Batches are crops drawn by index
(`TokenCrops`), a pure function of (seed, step, micro-step, rank), so resumed and
multi-process runs see exactly the data an uninterrupted single run would.

The run folder is a self-contained model directory: `config.json` + `model.safetensors` of
the LM, whose config names the codec it was trained with, and `codec/` (a copy of that
codec's folder, or the pretrained EnCodec name) so generation needs nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from .. import checkpoint
from ..config import to_dict
from ..errors import AudiogenError
from ..lm.model import LM, LMConfig
from ..tokens.crops import TokenCrops, collate
from .loop import MAX_CROP_SECONDS, TrainConfig


@dataclasses.dataclass
class LMDataConfig:
    dataset: str = ""
    crop_seconds: float = 10.0
    val_fraction: float = 0.1
    val_crops: int = 32
    conditioning: str = "auto"  # auto: MIDI when the dataset has it | midi | none

    def validate(self) -> None:
        if not 0 < self.crop_seconds <= MAX_CROP_SECONDS:  # NaN fails too
            raise AudiogenError(f"data: crop_seconds must be in (0, {MAX_CROP_SECONDS:g}] seconds, "
                                f"got {self.crop_seconds!r}")
        if not 0 <= self.val_fraction < 1:
            raise AudiogenError(f"data: val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.val_crops < 1:
            raise AudiogenError("data: val_crops must be at least 1")
        if self.conditioning not in ("auto", "midi", "none"):
            raise AudiogenError("data: conditioning must be auto, midi or none")


def _lm_train() -> TrainConfig:
    return TrainConfig(lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1, warmup_steps=200, batch_size=16,
                       eval_every=500, checkpoint_every=250, grad_clip=1.0)


@dataclasses.dataclass
class LMRecipe:
    data: LMDataConfig = dataclasses.field(default_factory=LMDataConfig)
    model: LMConfig = dataclasses.field(default_factory=LMConfig)
    train: TrainConfig = dataclasses.field(default_factory=_lm_train)


def bits_per_second(ce_per_codebook: torch.Tensor, frame_rate: float) -> float:
    """Nats per token summed over codebooks -> bits per second of audio."""
    return float(ce_per_codebook.sum()) / math.log(2) * frame_rate


class LMTask:
    """The LM and its token data, for `audiogen.training.loop.run`."""

    def __init__(self, recipe: LMRecipe, *, device: torch.device, rank: int = 0, world: int = 1, quiet: bool = True):
        self.recipe = recipe
        self.device = device
        self.rank, self.world = rank, world
        data = recipe.data
        if not data.dataset:
            raise AudiogenError("data.dataset is not set: give a folder made by audiogen tokenize (--data.dataset=DIR)")
        probe = TokenCrops(data.dataset, crop_frames=1, split="all")
        self.frame_rate = probe.frame_rate
        crop = max(1, int(round(data.crop_seconds * self.frame_rate)))
        use_cond = {"auto": probe.has_cond, "midi": True, "none": False}[data.conditioning]
        if data.conditioning == "midi" and not probe.has_cond:
            raise AudiogenError(f"{data.dataset}: conditioning = midi but the dataset has no paired MIDI files")
        ahead = recipe.model.cond_lookahead
        self.train_data = TokenCrops(data.dataset, crop_frames=crop, split="train", val_fraction=data.val_fraction,
                                     seed=recipe.train.seed, length=1 << 62, cond_lookahead=ahead)
        self.val_data = TokenCrops(data.dataset, crop_frames=crop, split="val", val_fraction=data.val_fraction,
                                   seed=recipe.train.seed, cond_lookahead=ahead)
        self.index = probe.index
        model_cfg = dataclasses.replace(
            recipe.model, num_codebooks=probe.num_codebooks, codebook_size=probe.codebook_size,
            cond_features=probe.cond_features if use_cond else 0,
        )
        model_cfg.validate()
        self.model_config = model_cfg
        self.model = LM(model_cfg)
        self.modules: dict[str, torch.nn.Module] = {"lm": self.model}
        self.use_cond = use_cond
        self.val_items = self.val_data.fixed_crops(data.val_crops)

    def describe(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        return (f"LM {params / 1e6:.2f} M params ({self.model_config.num_layers} layers, d {self.model_config.dim}), "
                f"{'MIDI-conditioned' if self.use_cond else 'unconditional'}; "
                f"train {len(self.train_data.entries)} files "
                f"({self.train_data.seconds / 3600:.2f} h), validation {len(self.val_data.entries)} files, "
                f"crops {self.train_data.crop_frames} frames")

    def param_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        # No weight decay on norms, biases and embeddings (nanoGPT's split).
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (decay if p.dim() >= 2 and "emb" not in name else no_decay).append(p)
        return {"lm": [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]}

    def _batch(self, items: list[dict[str, torch.Tensor]]):
        """(codes [B, K, T], cond [B, T + L, F] | None, valid [B, T], drop [B] | None)."""
        batch = collate(items)
        codes = batch["codes"].to(self.device)
        valid = batch["valid"].to(self.device)
        cond = drop = None
        if self.use_cond:
            cond = batch["cond"].to(self.device)
            drop = ~batch["has_cond"].to(self.device)  # audio without MIDI trains the null condition
        return codes, cond, valid, drop

    def train_step(self, step: int, micro: int, scale: float) -> dict[str, float]:
        B = self.recipe.train.batch_size
        first = ((step * self.recipe.train.grad_accum + micro) * self.world + self.rank) * B
        codes, cond, valid, drop = self._batch([self.train_data[first + i] for i in range(B)])
        loss, per_codebook = self.model.loss(codes, cond, valid=valid, drop_cond=drop)
        (loss * scale).backward()
        scalars = {"ce": float(loss.detach())}
        scalars.update({f"ce_k{k}": float(v) for k, v in enumerate(per_codebook.detach())})
        return scalars

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        totals = torch.zeros(self.model_config.num_codebooks, dtype=torch.float64)
        totals_nocond = torch.zeros_like(totals)
        count = 0
        B = self.recipe.train.batch_size
        for start in range(0, len(self.val_items), B):
            codes, cond, valid, drop = self._batch(self.val_items[start : start + B])
            _, per_codebook = self.model.loss(codes, cond, valid=valid, drop_cond=drop)
            n = codes.shape[0]
            totals += per_codebook.double().cpu() * n
            if cond is not None:  # the same audio under the learned null condition: what MIDI is worth
                _, per_codebook_nocond = self.model.loss(codes, None, valid=valid)
                totals_nocond += per_codebook_nocond.double().cpu() * n
            count += n
        ce = totals / max(1, count)
        result = {"val_ce": float(ce.mean()), "val_bits_per_second": bits_per_second(ce, self.frame_rate)}
        result.update({f"val_ce_k{k}": float(v) for k, v in enumerate(ce)})
        if self.use_cond:
            result["val_ce_without_midi"] = float((totals_nocond / max(1, count)).mean())
        return result

    def export(self, directory: Path) -> None:
        codec = self.index["codec"]
        self.model.save(directory, extra={"codec": codec, "frame_rate": self.frame_rate,
                                          "recipe": to_dict(self.recipe)})
        checkpoint.bundle_codec(Path(directory), codec.get("spec", ""))
