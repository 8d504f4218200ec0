"""Composer training task: `audiogen train composer RECIPE.toml -o RUN [--section.key=value ...]`.

    recipe = load_recipe(ComposerRecipe, "recipes/composer/composer.toml", overrides)
    task = ComposerTask(recipe, device=torch.device("cpu"))
    audiogen.training.loop.run(task, recipe.train, "runs/composer", device=..., resume=...)

Trains `Composer` on the event dataset of `audiogen.composer.data` with the shared loop
(`audiogen/training/loop.py`: AdamW, warm-up + cosine, clipping, accumulation, bf16 autocast on CUDA,
`torchrun`, `--train.max_minutes`, atomic checkpoints, exact resume). The dataset is built (or
brought up to date from its per-piece cache) by rank 0 when the task starts. A batch is a pure
function of (seed, step, micro-step, rank): rows of `model.context + 1` tokens packing crops
that start on bar lines, each transposed by a random shift. Validation: NLL per event on the
first bars of held-out pieces beside a bigram fitted on the training pieces (`val_nll_ratio`:
the issue's target is <= 0.7).

The run folder is a model folder (`Composer.load(run)`, float32); the bundled fp16 copy is
`Composer.load(run).save(dir, half=True)`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from ..composer.data import EventData, build_dataset
from ..composer.metrics import Bigram, heldout_nll
from ..composer.model import Composer, ComposerConfig
from ..composer.vocab import STYLES
from ..config import to_dict
from ..errors import AudiogenError
from . import distributed
from .loop import TrainConfig


@dataclasses.dataclass
class ComposerDataConfig:
    dataset: str = "data/composer"  # the dataset folder (built or updated there from its per-piece cache)
    build: bool = True  # bring the dataset up to date (parse what is not cached yet); false: use it as it is
    parse: bool = True  # with build: false assembles only the pieces already cached (a partial corpus)
    music21: bool = True  # music21's bundled corpus
    styles: list[str] = dataclasses.field(default_factory=list)  # corpus styles to take (empty: all)
    midi_dir: str = ""  # a folder of .mid files ...
    midi_style: str = ""  # ... and its style label (a corpus style, or a new label for a user slot)
    max_pieces: int = 0  # 0: all; else that many, spread over the listing (quick runs)
    workers: int = 1  # parsing processes
    val_fraction: float = 0.05
    val_pieces: int = 64  # held-out pieces scored at each evaluation
    transpose: int = 5  # random shift in [-transpose, transpose] semitones per crop
    balance_styles: bool = True  # draw each style equally often (else by size)

    def validate(self) -> None:
        if not 0 <= self.val_fraction < 1:
            raise AudiogenError("data: val_fraction must be in [0, 1)")
        if self.transpose < 0 or self.transpose > 12:
            raise AudiogenError("data: transpose must be between 0 and 12 semitones")
        if self.max_pieces < 0 or self.workers < 1 or self.val_pieces < 1:
            raise AudiogenError("data: max_pieces must be >= 0, workers and val_pieces >= 1")


def _composer_train() -> TrainConfig:
    # About 40 minutes on 2 CPU cores at the default model size (see recipes/composer/README.md).
    return TrainConfig(steps=1500, batch_size=8, lr=2e-3, betas=(0.9, 0.95), weight_decay=0.1, warmup_steps=100,
                       eval_every=250, checkpoint_every=250, log_every=10, grad_clip=1.0)


@dataclasses.dataclass
class ComposerRecipe:
    data: ComposerDataConfig = dataclasses.field(default_factory=ComposerDataConfig)
    model: ComposerConfig = dataclasses.field(default_factory=ComposerConfig)
    train: TrainConfig = dataclasses.field(default_factory=_composer_train)


class ComposerTask:
    """The composer and its event data, for `audiogen.training.loop.run`."""

    def __init__(self, recipe: ComposerRecipe, *, device: torch.device, rank: int = 0, world: int = 1,
                 quiet: bool = True):
        self.recipe = recipe
        self.device = device
        self.rank, self.world = rank, world
        d = recipe.data
        if d.build and rank == 0:
            self.summary = build_dataset(d.dataset, steps_per_quarter=recipe.model.steps_per_quarter,
                                         music21=d.music21, groups=d.styles, midi_dir=d.midi_dir,
                                         midi_style=d.midi_style, max_pieces=d.max_pieces, workers=d.workers,
                                         parse=d.parse, quiet=quiet)
        distributed.barrier()
        self.data = EventData(d.dataset, val_fraction=d.val_fraction, seed=recipe.train.seed)
        if self.data.vocab.steps_per_quarter != recipe.model.steps_per_quarter:
            raise AudiogenError(f"{d.dataset}: built with {self.data.vocab.steps_per_quarter} steps per quarter, "
                                f"the model has {recipe.model.steps_per_quarter}")
        user = list(recipe.model.user_styles)
        for style in self.data.style_names:
            if style not in STYLES and style not in user:
                user.append(style)
        self.model_config = dataclasses.replace(recipe.model, user_styles=user)
        self.model_config.validate()
        self.model = Composer(self.model_config)
        self.modules: dict[str, torch.nn.Module] = {"composer": self.model}
        if not self.data.train_pieces:
            raise AudiogenError(f"{d.dataset}: no training pieces (every piece is held out)")
        self.val_rows = self.data.val_rows(count=d.val_pieces, length=self.model_config.context, user_styles=user)
        self.bigram = Bigram.fit((self.data.tokens(i)[3:] for i in self.data.train_pieces), self.data.vocab.size)

    def describe(self) -> str:
        c = self.model_config
        return (f"composer {self.model.num_params / 1e6:.2f} M params ({c.num_layers} layers, d {c.dim}, "
                f"context {c.context}); {len(self.data.train_pieces)} training pieces, "
                f"{len(self.data.val_pieces)} held out; styles {', '.join(self.data.style_names)}")

    def param_groups(self) -> dict[str, list]:
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (decay if p.dim() >= 2 and "embed" not in name else no_decay).append(p)
        return {"composer": [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]}

    def batch(self, step: int, micro: int) -> torch.Tensor:
        """`[B, context + 1]` rows of batch (step, micro) for this rank: a pure function of them and the seed."""
        cfg, d = self.recipe.train, self.recipe.data
        index = (step * cfg.grad_accum + micro) * self.world + self.rank
        rows = self.data.train_batch(seed=cfg.seed, index=index, batch_size=cfg.batch_size,
                                     length=self.model_config.context, transpose=d.transpose,
                                     user_styles=self.model_config.user_styles, balance_styles=d.balance_styles)
        return torch.from_numpy(rows).to(self.device)

    def train_step(self, step: int, micro: int, scale: float) -> dict[str, float]:
        loss = self.model.loss(self.batch(step, micro))
        (loss * scale).backward()
        return {"nll": float(loss.detach())}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        if not len(self.val_rows):
            return {}
        scores = heldout_nll(self.model, self.val_rows, batch_size=self.recipe.train.batch_size, bigram=self.bigram)
        return {"val_nll": scores["nll"], "val_bigram_nll": scores["bigram_nll"], "val_nll_ratio": scores["nll_ratio"]}

    def export(self, directory: Path) -> None:
        info = {"pieces": len(self.data.pieces), "tokens": int(self.data.index["tokens"]),
                "styles": self.data.index["styles"]}
        self.model.save(directory, extra={"recipe": to_dict(self.recipe), "dataset": info})
