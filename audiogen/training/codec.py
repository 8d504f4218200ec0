"""Codec training task: `audiogen train codec RECIPE.toml [--section.key=value ...]`.

Trains an EnCodec-architecture codec (`CodecConfig`) on a folder of audio files with the
shared loop in `audiogen/training/loop.py`. Data are random crops from files held in memory as int16
at the codec's rate; crops are a pure function of (seed, step, micro-step, rank), so resume and
multi-process runs see exactly the batches an uninterrupted single run would.
Validation runs the real inference path (`encode` -> `decode`) on fixed crops of held-out
files and reports SI-SNR, multi-scale mel distance and codebook usage.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from .. import audio
from ..codec.encodec import CodecConfig, EncodecCodec
from ..config import to_dict
from ..errors import AudiogenError
from ..evaluation.metrics import high_frequency_ratio, mel_distance, si_snr
from ..folders import list_audio, split_files
from ..progress import bar
from .codec_losses import (
    Balancer,
    LossConfig,
    ReconstructionLosses,
    adversarial_generator_loss,
    build_discriminator,
    discriminator_loss,
    feature_matching_loss,
)
from .loop import MAX_CROP_SECONDS, TrainConfig


@dataclasses.dataclass
class CodecDataConfig:
    root: str = ""
    val_fraction: float = 0.1
    split_seed: int = 0
    crop_seconds: float = 1.0
    val_seconds: float = 4.0
    val_crops: int = 16
    max_files: int = 0  # 0 = all
    gain_db: float = 0.0  # random gain in [-gain_db, 0] dB per crop

    def validate(self) -> None:
        # Written `not <what is allowed>` so that NaN fails every check.
        if not (0 < self.crop_seconds <= MAX_CROP_SECONDS and 0 < self.val_seconds <= MAX_CROP_SECONDS):
            raise AudiogenError(f"data: crop_seconds and val_seconds must be in (0, {MAX_CROP_SECONDS:g}] seconds, "
                                f"got {self.crop_seconds!r} and {self.val_seconds!r}")
        if not 0 <= self.val_fraction < 1:
            raise AudiogenError(f"data: val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if not 0 <= self.gain_db <= 120:
            raise AudiogenError(f"data: gain_db must be in [0, 120] dB, got {self.gain_db!r}")
        if self.val_crops < 1 or self.max_files < 0 or self.split_seed < 0:
            raise AudiogenError("data: val_crops must be at least 1, max_files and split_seed >= 0")


def _small_codec() -> CodecConfig:
    # A CPU-trainable default: 75 Hz frames at 24 kHz, 4 codebooks of 1024 (3 kbps).
    return CodecConfig(n_filters=16, dimension=64, causal=False, max_codebooks=4, num_codebooks=4,
                       name="audiogen_codec")


def _codec_train() -> TrainConfig:
    return TrainConfig(lr=3e-4, betas=(0.5, 0.9), warmup_steps=200, schedule="cosine", min_lr_ratio=0.1,
                       grad_clip=0.0, eval_every=1000, checkpoint_every=500)


@dataclasses.dataclass
class FinetuneConfig:
    """Start from an existing codec folder; optionally train its decoder only.

    With `decoder_only`, the encoder and quantizer are frozen (no gradients, no codebook EMA
    updates), so the codes it produces never change: a language model trained on its tokens
    stays valid while the decoder keeps improving (the codec's fingerprint covers the encoder
    and quantizer only).
    """

    init_from: str = ""
    decoder_only: bool = False

    def validate(self) -> None:
        if self.decoder_only and not self.init_from:
            raise AudiogenError("finetune: decoder_only needs init_from (the codec whose tokens to keep)")


@dataclasses.dataclass
class CodecRecipe:
    data: CodecDataConfig = dataclasses.field(default_factory=CodecDataConfig)
    model: CodecConfig = dataclasses.field(default_factory=_small_codec)
    losses: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: TrainConfig = dataclasses.field(default_factory=_codec_train)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)


class AudioBank:
    """Whole files in memory as int16 `[C, N]` at the codec's rate and channel count."""

    def __init__(self, files: list[Path], sample_rate: int, channels: int, *, quiet: bool = True):
        self.clips: list[torch.Tensor] = []
        self.names: list[str] = []
        self.skipped: list[str] = []
        progress = bar(len(files), "loading audio", quiet=quiet, unit="file")
        for path in files:
            progress.update(1)
            try:
                wav, sr = audio.load(path)
            except AudiogenError as err:
                self.skipped.append(str(err))
                continue
            wav = audio.prepare(wav, sr, target_rate=sample_rate, channels=channels)
            self.clips.append((wav.clamp(-1, 1) * 32767).round().to(torch.int16))
            self.names.append(str(path))
        progress.close()
        self.lengths = torch.tensor([c.shape[-1] for c in self.clips], dtype=torch.float64)

    @property
    def seconds(self) -> float:
        return float(self.lengths.sum())

    def crop(self, index: int, start: int, length: int) -> torch.Tensor:
        clip = self.clips[index][..., start : start + length].float() / 32767
        if clip.shape[-1] < length:
            clip = torch.nn.functional.pad(clip, (0, length - clip.shape[-1]))
        return clip

    def random_batch(self, generator: torch.Generator, batch: int, length: int, gain_db: float = 0.0) -> torch.Tensor:
        """`[B, C, length]` crops; files drawn in proportion to their length."""
        files = torch.multinomial(self.lengths, batch, replacement=True, generator=generator)
        out = []
        for index in files.tolist():
            room = max(0, int(self.lengths[index]) - length)
            start = int(torch.randint(0, room + 1, (1,), generator=generator))
            crop = self.crop(index, start, length)
            if gain_db > 0:
                crop = crop * 10 ** (-gain_db * float(torch.rand((), generator=generator)) / 20)
            out.append(crop)
        return torch.stack(out)

    def fixed_crops(self, count: int, length: int) -> torch.Tensor:
        """Deterministic evenly spaced crops for validation (`[count, C, length]`)."""
        crops = []
        per_file = max(1, math.ceil(count / max(1, len(self.clips))))
        for index, total in enumerate(self.lengths.tolist()):
            for j in range(per_file):
                start = int((total - length) * (j + 0.5) / per_file) if total > length else 0
                crops.append(self.crop(index, start, length))
        return torch.stack(crops[:count]) if crops else torch.zeros(0)


class CodecTask:
    """The codec (+ discriminator) and its losses, for `audiogen.training.loop.run`."""

    def __init__(self, recipe: CodecRecipe, *, device: torch.device, rank: int = 0, world: int = 1, quiet: bool = True):
        self.recipe = recipe
        self.device = device
        self.rank, self.world = rank, world
        cfg = recipe.model
        if not recipe.data.root:
            raise AudiogenError("data.root is not set: give the audio folder (--data.root=DIR)")
        files = list_audio(recipe.data.root)
        if recipe.data.max_files:
            files = files[: recipe.data.max_files]
        if not files:
            raise AudiogenError(f"{recipe.data.root}: no audio files found")
        train_files, val_files = split_files(files, recipe.data.root, recipe.data.val_fraction, recipe.data.split_seed)
        if not val_files:
            val_files = train_files  # a single file: validate on it rather than not at all
        self.train_bank = AudioBank(train_files, cfg.sample_rate, cfg.channels, quiet=quiet)
        self.val_bank = AudioBank(val_files, cfg.sample_rate, cfg.channels, quiet=quiet)
        if not self.train_bank.clips:
            raise AudiogenError(f"{recipe.data.root}: no readable audio files ({len(self.train_bank.skipped)} skipped)")
        if not self.val_bank.clips:
            self.val_bank = self.train_bank
        ft = recipe.finetune
        if ft.init_from:
            # The starting codec defines the architecture; a different [model] section is a mistake.
            self.codec = EncodecCodec.load(ft.init_from)
            if to_dict(self.codec.config) != to_dict(cfg):
                raise AudiogenError(f"finetune.init_from {ft.init_from}: its config differs from this recipe's [model]")
        else:
            self.codec = EncodecCodec(cfg)
        self.frozen = [self.codec.encoder, self.codec.quantizer] if ft.decoder_only else []
        for module in self.frozen:
            module.requires_grad_(False)
        self.modules: dict[str, torch.nn.Module] = {"codec": self.codec}
        lc = recipe.losses
        self.losses = ReconstructionLosses(cfg.sample_rate, stft=lc.stft > 0).to(device)
        self.balancer = Balancer(self.loss_weights, ema=lc.balancer_ema) if lc.balancer else None
        if self.balancer is not None:
            self.modules["balancer"] = self.balancer  # its running norms are resume state
        self.disc = build_discriminator(lc, cfg.channels) if lc.use_gan else None
        if self.disc is not None:
            self.modules["disc"] = self.disc
        self.crop_samples = int(round(recipe.data.crop_seconds * cfg.sample_rate))
        val_samples = int(round(recipe.data.val_seconds * cfg.sample_rate))
        self.val_wav = self.val_bank.fixed_crops(recipe.data.val_crops, val_samples)

    def describe(self) -> str:
        params = sum(p.numel() for p in self.codec.parameters())
        return (f"codec {params / 1e6:.2f} M params, {self.recipe.model.kbps:.2f} kbps, "
                f"{self.codec.frame_rate:g} Hz frames; train {len(self.train_bank.clips)} files "
                f"({self.train_bank.seconds / self.recipe.model.sample_rate / 3600:.2f} h), "
                f"validation {len(self.val_bank.clips)} files")

    def param_groups(self) -> dict[str, list]:
        groups: dict[str, list] = {"codec": [p for p in self.codec.parameters() if p.requires_grad]}
        if self.disc is not None:  # the loop scales each group's lr by its `lr_scale`
            groups["disc"] = [{"params": list(self.disc.parameters()), "lr_scale": self.recipe.losses.disc_lr_scale}]
        return groups

    @property
    def loss_weights(self) -> dict[str, float]:
        """Weights of the losses that reach the decoder output (balanced, or a plain weighted sum)."""
        lc = self.recipe.losses
        return {"l1": lc.l1, "mel": lc.mel, "stft": lc.stft, "adversarial": lc.adversarial, "feature": lc.feature}

    def _seed(self, step: int, micro: int) -> int:
        accum = self.recipe.train.grad_accum
        return self.recipe.train.seed * 1_000_003 + ((step * accum + micro) * self.world + self.rank)

    def batch(self, step: int, micro: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self._seed(step, micro))
        wav = self.train_bank.random_batch(generator, self.recipe.train.batch_size, self.crop_samples,
                                           self.recipe.data.gain_db)
        return wav.to(self.device)

    def num_codebooks(self, step: int, micro: int) -> int:
        """The quantizer depth for this micro-batch: drawn (quantizer dropout) from the batch's seed
        moved to a stream of its own, so crops stay as without dropout and resume draws the same."""
        generator = torch.Generator().manual_seed(self._seed(step, micro) + (1 << 48))
        return self.codec.draw_num_codebooks(generator)

    def train_step(self, step: int, micro: int, scale: float) -> dict[str, float]:
        lc = self.recipe.losses
        wav = self.batch(step, micro)
        for module in self.frozen:  # eval mode: no codebook EMA updates or dead-code replacement
            module.eval()
        depth = self.num_codebooks(step, micro)
        recon, _, commit = self.codec(wav, num_codebooks=depth)
        losses = self.losses(wav, recon)
        gan_on = self.disc is not None and step >= lc.disc_start_step
        if gan_on:
            self.disc.requires_grad_(False)  # the generator's losses must not train the discriminator
            logits_fake, feats_fake = self.disc(recon)
            with torch.no_grad():
                _, feats_real = self.disc(wav)
            losses["adversarial"] = adversarial_generator_loss(logits_fake)
            losses["feature"] = feature_matching_loss(feats_real, feats_fake)
            self.disc.requires_grad_(True)
        commit_term = lc.commitment * commit
        scalars = {k: float(v.detach()) for k, v in losses.items()}
        scalars["commit"] = float(commit.detach())
        if self.recipe.model.quantizer_dropout:
            scalars["codebooks"] = float(depth)
        if self.balancer is not None:
            grad = self.balancer.gradient(losses, recon)
            if commit_term.requires_grad:
                torch.autograd.backward([recon, commit_term * scale], [grad * scale, torch.ones_like(commit_term)])
            else:  # frozen encoder and quantizer: only the decoder learns
                recon.backward(grad * scale)
        else:
            weights = self.loss_weights
            total = sum(weights[k] * v for k, v in losses.items()) + commit_term
            (total * scale).backward()
        if gan_on:
            logits_real, _ = self.disc(wav)
            logits_fake, _ = self.disc(recon.detach())
            d_loss = discriminator_loss(logits_real, logits_fake)
            (d_loss * scale).backward()
            scalars["disc"] = float(d_loss.detach())
        return scalars

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        if self.val_wav.numel() == 0:
            return {}
        snrs, mels, used = [], [], set()
        highs: dict[str, list[float]] = {"val_hf2k": [], "val_hf4k": []}
        sr = self.codec.sample_rate
        for start in range(0, self.val_wav.shape[0], 8):
            wav = self.val_wav[start : start + 8].to(self.device)
            codes = self.codec.encode(wav)
            out = self.codec.decode(codes, length=wav.shape[-1])
            snrs.append(si_snr(wav, out).mean(dim=-1).cpu())
            mels.append(mel_distance(wav, out, sr))
            used.update(codes[:, 0].flatten().tolist())
            for ref, est in zip(wav, out):  # per crop: a share of one clip's energy
                highs["val_hf2k"].append(high_frequency_ratio(ref, est, sr, 2000.0))
                highs["val_hf4k"].append(high_frequency_ratio(ref, est, sr, 4000.0))
        kept = {k: [x for x in v if x == x] for k, v in highs.items()}  # NaN: a crop without highs
        return {"val_si_snr": float(torch.cat(snrs).mean()), "val_mel": float(sum(mels) / len(mels)),
                "val_usage_k0": len(used) / self.codec.codebook_size,
                **{k: sum(v) / len(v) for k, v in kept.items() if v}}

    def export(self, directory: Path) -> None:
        self.codec.save(directory, extra={"recipe": to_dict(self.recipe)})
