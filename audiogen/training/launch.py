"""Start a training run from a recipe: process group, device, seeding, the task, the loop, a clean exit.

    result, rank = train("lm", "recipes/tiny/lm.toml", "runs/lm", overrides=["--train.steps=10"])

What `audiogen train` (alone or under `torchrun`) calls; the same code runs in one process or many.
"""

from __future__ import annotations

import os
import sys

import torch

from ..config import load_recipe, to_dict
from ..runtime import resolve_device
from . import distributed
from .loop import run


def _busy_hint(threads: int, device: torch.device) -> None:
    """Say so when other processes keep cores busy: training keeps its thread count (resumes stay bitwise
    exact), and on a busy machine OpenMP threads that wait for a shared core can run many times slower."""
    from ..threads import monitor

    others = monitor().read()
    if device.type == "cpu" and not threads and torch.get_num_threads() > 1 and others is not None and others >= 0.5:
        print(f"note: other processes keep about {others:.1f} of {monitor().cpus} cores busy; training on "
              f"{torch.get_num_threads()} threads may run many times slower than on one (--train.threads=1)",
              file=sys.stderr)


def train(what: str, recipe_path: str | os.PathLike, out: str | os.PathLike, *, overrides: list[str] = (),
          device: str = "auto", resume: bool = False, quiet: bool = False) -> tuple[dict[str, float], int]:
    """Train a codec (`what="codec"`), a language model (`"lm"`) or a composer (`"composer"`); return (last
    evaluation, this rank)."""
    if what == "codec":
        from .codec import CodecRecipe as Recipe
        from .codec import CodecTask as Task
    elif what == "lm":
        from .lm import LMRecipe as Recipe
        from .lm import LMTask as Task
    elif what == "composer":
        from .composer import ComposerRecipe as Recipe
        from .composer import ComposerTask as Task
    else:
        raise ValueError(f"nothing to train called {what!r} (codec, lm or composer)")
    # Everything a user can get wrong is checked before anything is built or written: the environment,
    # the recipe (types, finite numbers, domains) and the device.
    distributed.check_env()
    recipe = load_recipe(Recipe, recipe_path, list(overrides))
    cfg = recipe.train
    torch_device = resolve_device(cfg.device if device == "auto" else device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world = distributed.init(torch_device.type)
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank (then broadcast anyway)
    try:
        rank_quiet = quiet or rank != 0
        task = Task(recipe, device=torch_device, rank=rank, world=world, quiet=rank_quiet)
        if not rank_quiet:
            print(f"{task.describe()}; {world} process(es) on {torch_device}", file=sys.stderr)
            _busy_hint(cfg.threads, torch_device)
        result = run(task, cfg, out, device=torch_device, resume=resume, quiet=rank_quiet,
                     recipe=to_dict(recipe), desc=f"train {what}")
        # Leave together: a rank that tears its connections down while a peer is still finishing
        # (rank 0 writes the final checkpoint) can make gloo abort the peer.
        distributed.barrier()
    finally:
        distributed.shutdown()
    return result, rank
