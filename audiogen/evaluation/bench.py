"""`audiogen bench`: generation speed against the machine's limit and against transformers' MusicGen.

    audiogen bench [--device cpu|cuda] [--json OUT.json] [--batch-sizes 1,16,64] [--smoke]

In one run, on one machine:
  * machine limits: memory bandwidth (the faster of a streaming sum and a matrix-vector product
    over 128 MB) and matrix-multiply throughput in fp32 and bf16;
  * LM decoding with the KV cache (`generate_tokens`, top-k sampling) in steps/s and audio
    seconds per wall second at each batch size, for the bundled default model and a reference
    size (d_model 512, 8 layers, 8 heads, 4 codebooks of 1024, delay pattern), fp32 and bf16;
  * the same reference size in transformers' `MusicgenForCausalLM` (random weights, `generate`
    with sampling and its KV cache) when transformers is installed: the ratio ours/theirs;
  * the fastest possible step (weight bytes / bandwidth at batch 1, FLOPs / matmul rate at large
    batch) and the fraction of it reached;
  * codec encode/decode real-time factors, end-to-end real-time factors of render, continue and
    loops (also with the LM in bf16 where bf16 is native: `--dtype bf16`), and LM training
    throughput (tokens/s) with its model-FLOPs utilisation.
`--smoke` shrinks every size so the whole run takes seconds (the test suite runs it).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import platform
import time
from collections.abc import Callable
from typing import Any

import torch

from ..errors import AudiogenError
from ..generation.options import SamplingConfig
from ..generation.token_loop import generate_tokens
from ..lm.model import LM, LMConfig

REFERENCE = LMConfig(num_codebooks=4, codebook_size=1024, dim=512, num_layers=8, num_heads=8, context=1500)
SMOKE_REFERENCE = LMConfig(num_codebooks=4, codebook_size=64, dim=64, num_layers=2, num_heads=2, context=128)


@dataclasses.dataclass
class BenchConfig:
    device: str = "cpu"
    batch_sizes: tuple[int, ...] = (1, 16, 64)
    steps: int = 100  # decode steps timed per measurement (after a warm-up)
    smoke: bool = False
    peer: bool = True
    tasks: bool = True
    model: str | None = None  # model folder for the "default" rows (None: the bundled one)
    busy: int | None = None  # also measure with a process spinning on one core at this niceness (`busy_rows`)
    startup: bool = True  # time `--help` and a render's first line and bar on a pseudo-terminal


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn: Callable[[], Any], device: torch.device, *, repeat: int = 3, min_time: float = 0.0) -> float:
    """Best wall time of `repeat` calls after one warm-up (seconds)."""
    fn()
    _sync(device)
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
        if min_time and best > min_time:
            break
    return best


# ---------------------------------------------------------------------- machine limits


def machine_limits(device: torch.device, *, smoke: bool = False) -> dict[str, float]:
    """Memory bandwidth (GB/s) and matmul GFLOP/s (fp32, bf16).

    Bandwidth is the faster of two reads of one 128 MB fp32 matrix (4x the L3 cache): a plain sum,
    a streaming read as STREAM measures it, and a matrix-vector product, the batch-1 decode
    regime. A mat-vec kernel alone can understate what the memory delivers (PyTorch's fp32 one
    reads 21 GB/s on the 2-core machine, its sum 32 GB/s), and a limit must not be beatable.
    """
    rows = 1024 if smoke else 8192
    weight = torch.randn(rows, 4096, device=device)
    vector = torch.randn(4096, 1, device=device)
    t = min(timeit(lambda: weight @ vector, device, repeat=10), timeit(weight.sum, device, repeat=10))
    bandwidth = weight.numel() * 4 / t / 1e9
    n = 1024 if smoke else 2048
    out = {"bandwidth_gbs": bandwidth}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        t = timeit(lambda a=a, b=b: a @ b, device, repeat=5)
        out[f"{name}_gflops"] = 2 * n**3 / t / 1e9
    return out


def weight_bytes(model: torch.nn.Module, dtype: torch.dtype | str) -> int:
    """Bytes a decode step must read: every weight except the embedding tables (a few rows are read).
    `"int8"`: the int8 decode step's one byte a weight (its per-row scales are a rounding error)."""
    size = 1 if dtype == "int8" else torch.tensor([], dtype=dtype).element_size()
    return sum(p.numel() for n, p in model.named_parameters() if "embed" not in n) * size


def step_flops(model: torch.nn.Module, batch: int) -> float:
    """Multiply-adds x 2 of one decode step's matrix products (weights; attention is small at the start)."""
    return 2.0 * batch * sum(p.numel() for n, p in model.named_parameters() if "embed" not in n and p.dim() >= 2)


def limit_seconds(model: torch.nn.Module, batch: int, dtype: torch.dtype | str, limits: dict[str, float]) -> float:
    """The fastest possible decode step: the larger of weight-read time and matmul time (int8 products run
    on bf16 rows: bf16's rate)."""
    rate = limits["bf16_gflops" if dtype in (torch.bfloat16, "int8") else "fp32_gflops"] * 1e9
    return max(weight_bytes(model, dtype) / (limits["bandwidth_gbs"] * 1e9), step_flops(model, batch) / rate)


# ---------------------------------------------------------------------- decoding


def ours_decode(model: LM, batch: int, steps: int, device: torch.device) -> float:
    """Steps per second of `generate_tokens` (sampling, top-k 250, KV cache) from an empty cache."""
    frames = steps - model.pattern.max_delay
    sampling = SamplingConfig(temperature=1.0, top_k=min(250, model.config.codebook_size), seed=0)

    def run() -> None:
        generate_tokens(model, num_frames=frames, batch_size=batch, sampling=sampling)

    return steps / timeit(run, device, repeat=2)


def peer_decode(config: LMConfig, batch: int, steps: int, device: torch.device) -> float | None:
    """transformers' MusicgenForCausalLM of the same size: steps/s of `generate` with sampling."""
    try:
        from transformers import MusicgenDecoderConfig, MusicgenForCausalLM
        from transformers.utils import logging as hf_logging
    except ImportError:
        return None
    hf_logging.set_verbosity_error()
    V = config.codebook_size
    cfg = MusicgenDecoderConfig(
        vocab_size=V, num_codebooks=config.num_codebooks, hidden_size=config.dim,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads, ffn_dim=4 * config.dim,
        max_position_embeddings=max(2048, steps + 8), pad_token_id=V, bos_token_id=V, decoder_start_token_id=V)
    torch.manual_seed(0)
    model = MusicgenForCausalLM(cfg).eval().to(device)
    tokens = torch.full((batch * config.num_codebooks, 1), V, device=device)

    def run() -> None:
        with torch.inference_mode():
            model.generate(input_ids=tokens, max_new_tokens=steps, do_sample=True, top_k=min(250, V),
                           num_return_sequences=1)

    return steps / timeit(run, device, repeat=2)


def decode_rows(name: str, model: LM, cfg: BenchConfig, device: torch.device, limits: dict[str, float],
                frame_rate: float, peer: dict[int, float | None]) -> list[dict[str, Any]]:
    """fp32 and bf16 rows for each batch size, and int8 (`--dtype int8`) on CPUs; `model` itself is left as it
    was (other dtypes run on a copy, since a round trip through bf16 would round its weights)."""
    from ..lm.decode_cpu import int8_available

    rows = []
    own_dtype = model.heads.weight.dtype
    kinds = [("fp32", torch.float32), ("bf16", torch.bfloat16)]
    if device.type == "cpu" and int8_available():
        kinds.append(("int8", torch.float32))
    for dtype_name, dtype in kinds:
        model.clear_cache()
        lm = model if dtype == own_dtype and dtype_name != "int8" else copy.deepcopy(model).to(dtype)
        if dtype_name == "int8":
            lm.decode_kernels = "int8"
        for batch in cfg.batch_sizes:
            steps_per_s = ours_decode(lm, batch, cfg.steps, device)
            limit = limit_seconds(lm, batch, "int8" if dtype_name == "int8" else dtype, limits)
            row = {"model": name, "dtype": dtype_name, "batch": batch, "steps_per_s": steps_per_s,
                   "frames_per_s": steps_per_s * batch, "audio_x_realtime": steps_per_s * batch / frame_rate,
                   "limit_steps_per_s": 1 / limit, "fraction_of_limit": steps_per_s * limit,
                   # which decode step ran: prepacked (CPU), compiled (CUDA), or the plain modules;
                   # and for the prepacked one, its kernels (xnnpack, onednn, native)
                   "decode_path": lm._decoder.path if lm._decoder is not None else "modules",
                   "decode_kernels": getattr(lm._decoder, "kind", None)}
            theirs = peer.get(batch)
            if theirs:
                row["musicgen_steps_per_s"] = theirs
                row["ours_over_musicgen"] = steps_per_s / theirs
            rows.append(row)
        lm.clear_cache()
    return rows


# ---------------------------------------------------------------------- training, codec, tasks


def train_throughput(config: LMConfig, device: torch.device, limits: dict[str, float], *,
                     smoke: bool) -> dict[str, Any]:
    """Tokens (frames x codebooks) per second of forward+backward+AdamW, and model-FLOPs utilisation."""
    torch.manual_seed(0)
    model = LM(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    B, T = (2, 64) if smoke else (8, 500)
    codes = torch.randint(0, config.codebook_size, (B, config.num_codebooks, T), device=device)
    use_bf16 = device.type == "cuda" or limits["bf16_gflops"] > 1.5 * limits["fp32_gflops"]

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss, _ = model.loss(codes)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds = timeit(step, device, repeat=2)
    params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    frames_per_s = B * T / seconds
    peak = limits["bf16_gflops" if use_bf16 else "fp32_gflops"] * 1e9
    return {"precision": "bf16 autocast" if use_bf16 else "fp32", "batch": B, "frames": T,
            "tokens_per_s": frames_per_s * config.num_codebooks, "mfu": 6 * params * frames_per_s / peak}


def codec_rows(codec, device: torch.device, *, seconds: float) -> dict[str, float]:
    wav = torch.randn(1, codec.channels, int(seconds * codec.sample_rate), device=device) * 0.1
    codec = codec.to(device).eval()
    encode = timeit(lambda: codec.encode(wav), device, repeat=2)
    codes = codec.encode(wav)
    decode = timeit(lambda: codec.decode(codes), device, repeat=2)
    return {"codec_encode_x_realtime": seconds / encode, "codec_decode_x_realtime": seconds / decode}


def bench_sketch(seconds: float):
    """The tasks' MIDI sketch: a piano note every half second at 120 BPM, stepping by fourths (a PrettyMIDI)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(program=0)
    for i in range(int(seconds * 2)):
        piano.notes.append(pretty_midi.Note(90, 60 + (i * 5) % 12, i * 0.5, i * 0.5 + 0.45))
    pm.instruments.append(piano)
    return pm


PHASES = ("load", "codec encode", "prefill", "decode", "codec decode", "write")  # how task times are split


def task_rows(ag, *, smoke: bool, load_seconds: float = 0.0) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """End-to-end real-time factors (audio seconds / wall seconds) of render, continue and loops, batch 1,
    and where each task's time went: `PHASES` in seconds (`load`: the model's, once per process, shown
    with every task; `other`: the rest, such as MIDI features and sketch fitting)."""
    import tempfile
    from pathlib import Path

    from .. import audio
    from ..timing import phase, record

    seconds = 1.0 if smoke else 8.0
    pm = bench_sketch(seconds)
    seed = torch.randn(1, ag.sample_rate) * 0.1
    tasks: dict[str, Callable[[], Any]] = {}
    if ag.conditional:
        tasks["render"] = lambda: ag.render_midi(pm, seconds=seconds)
    tasks["continue"] = lambda: ag.continue_audio(seed, ag.sample_rate, seconds, keep_prompt=False)

    def one_loop() -> tuple[Any, int]:
        made, sr = ag.loops(1, 1 if smoke else 4, 120, batch_size=1)
        return made[0], sr

    tasks["loops"] = one_loop
    rates: dict[str, float] = {}
    split: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, task in tasks.items():
            with record() as spent:
                start = time.perf_counter()
                wav, sr = task()
                with phase("write"):
                    audio.save(Path(folder) / f"{name}.wav", wav, sr)
                wall = time.perf_counter() - start
            rates[f"{name}_x_realtime"] = wav.shape[-1] / sr / wall
            split[name] = {"load": load_seconds, **{k: spent.get(k, 0.0) for k in PHASES[1:]},
                           "other": max(0.0, wall - sum(spent.values()))}
    return rates, split


# ---------------------------------------------------------------------- start-up and a busy machine


def run_on_terminal(argv: list[str], *, columns: int = 100) -> tuple[int, list[tuple[float, bytes]]]:
    """Run `argv` with its stderr on a pseudo-terminal `columns` wide (stdin and stdout: nothing), as a user's
    terminal would show it: the exit status, and each chunk it wrote there with the seconds since it started.
    ImportError where there are no pseudo-terminals (not POSIX)."""
    import pty
    import select
    import struct
    import subprocess
    import termios
    from fcntl import ioctl

    master, slave = pty.openpty()
    ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks: list[tuple[float, bytes]] = []
    try:
        while proc.poll() is None or select.select([master], [], [], 0)[0]:
            if not select.select([master], [], [], 0.02)[0]:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed its end
                break
            chunks.append((time.perf_counter() - start, chunk))
    finally:
        os.close(master)
    return proc.wait(), chunks


def startup_rows(model_dir: str | None, *, smoke: bool) -> dict[str, float] | None:
    """Seconds from starting a command to what a user first sees: `audiogen --help` done (best of 3), and for
    `audiogen render` on a terminal (`run_on_terminal`) its first line and its first real bar.
    None where there are no pseudo-terminals (not POSIX)."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    def best_help() -> float:
        best = math.inf
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "audiogen", "--help"], stdout=subprocess.DEVNULL, check=True)
            best = min(best, time.perf_counter() - start)
        return best

    out = {"help_seconds": best_help()}
    with tempfile.TemporaryDirectory() as folder:
        bench_sketch(2.0).write(str(Path(folder) / "sketch.mid"))
        argv = [sys.executable, "-m", "audiogen", "render", str(Path(folder) / "sketch.mid"), "-o",
                str(Path(folder) / "out.wav"), "--seconds", "1" if smoke else "2", "--device", "cpu"]
        if model_dir:
            argv += ["--model", str(model_dir)]
        try:
            code, chunks = run_on_terminal(argv)
        except ImportError:
            return None
    if code != 0:
        raise AudiogenError(f"bench: `audiogen render` for the start-up timing exited with {code}")
    seen = b""
    for seconds, chunk in chunks:
        if chunk.strip() and "first_line_seconds" not in out:
            out["first_line_seconds"] = seconds
        seen += chunk
        if b"|" in seen and "first_bar_seconds" not in out:  # a tqdm bar: "render:  0%|"
            out["first_bar_seconds"] = seconds
    return out


def busy_rows(ag, cfg: BenchConfig, device: torch.device, load_seconds: float) -> dict[str, Any]:
    """The codec, the default model's fp32 decode and the end-to-end tasks again, with a process spinning on one
    core beside them (a busy laptop; niced by `cfg.busy`), with adapting thread counts (`audiogen.threads`)
    and with them off (the codec, which never adapts, once)."""
    import subprocess
    import sys

    from .. import threads

    nice = cfg.busy or 0
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=lambda: os.nice(nice))
    previous = os.environ.get(threads.ENV)
    out: dict[str, Any] = {}
    try:
        time.sleep(0.5)  # the hog is running before anything is timed
        for mode, switch in (("adaptive", "1"), ("fixed", "0")):
            os.environ[threads.ENV] = switch
            # The codec keeps its thread count whatever the switch (its output must not depend on the load),
            # so it is timed once and its row stands in both modes.
            rows = {"codec": out["adaptive"]["codec"] if out else codec_rows(ag.codec, device,
                                                                              seconds=2.0 if cfg.smoke else 10.0)}
            for batch in cfg.batch_sizes:
                ag.lm.clear_cache()
                rows[f"decode_batch_{batch}_steps_per_s"] = ours_decode(ag.lm, batch, cfg.steps, device)
            ag.lm.clear_cache()
            if cfg.tasks:
                rows["tasks"] = task_rows(ag, smoke=cfg.smoke, load_seconds=load_seconds)[0]
            out[mode] = rows
    finally:
        hog.kill()
        hog.wait()
        if previous is None:
            os.environ.pop(threads.ENV, None)
        else:
            os.environ[threads.ENV] = previous
    return out


# ---------------------------------------------------------------------- the run


def run_bench(cfg: BenchConfig, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    from ..runtime import resolve_device

    device = resolve_device(cfg.device)
    torch.manual_seed(0)
    report: dict[str, Any] = {
        "machine": {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "cpu": platform.processor() or platform.machine(),
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None},
        "config": dataclasses.asdict(cfg),
    }
    log("measuring machine limits ...")
    limits = machine_limits(device, smoke=cfg.smoke)
    report["limits"] = limits
    reference = SMOKE_REFERENCE if cfg.smoke else REFERENCE
    frame_rate = 75.0
    peer: dict[int, float | None] = {}
    if cfg.peer:
        for batch in cfg.batch_sizes:
            log(f"transformers MusicGen, batch {batch} ...")
            peer[batch] = peer_decode(reference, batch, cfg.steps, device)
        if all(v is None for v in peer.values()):
            report["musicgen"] = "transformers not installed (pip install 'audiogen[bench]')"
    rows = []
    log("audiogen reference-size LM ...")
    torch.manual_seed(0)
    rows += decode_rows("reference", LM(reference).to(device).eval(), cfg, device, limits, frame_rate, peer)
    from ..generation.engine import AudioGen
    from ..lm.decode_cpu import int8_available
    from ..runtime import native_bf16

    ag = None
    try:
        started = time.perf_counter()
        ag = AudioGen.load(cfg.model, device=str(device))
        load_seconds = time.perf_counter() - started
    except AudiogenError as err:
        report["default_model"] = f"not measured: {err}"
    if ag is not None:
        log("default model ...")
        rows += decode_rows("default", ag.lm, cfg, device, limits, ag.frame_rate, {})
        report["codec"] = codec_rows(ag.codec, device, seconds=2.0 if cfg.smoke else 10.0)
        if cfg.tasks:
            log("end-to-end tasks ...")
            report["tasks"], report["task_seconds"] = task_rows(ag, smoke=cfg.smoke, load_seconds=load_seconds)
            if native_bf16(device) and ag.lm.heads.weight.dtype == torch.float32:
                log("end-to-end tasks, bf16 LM (--dtype bf16) ...")
                ag16 = AudioGen(copy.deepcopy(ag.lm).to(torch.bfloat16), ag.codec, model_dir=ag.model_dir)
                report["tasks_bf16"], report["task_seconds_bf16"] = task_rows(ag16, smoke=cfg.smoke,
                                                                              load_seconds=load_seconds)
            if device.type == "cpu" and int8_available() and ag.lm.heads.weight.dtype == torch.float32:
                log("end-to-end tasks, int8 decode steps (--dtype int8) ...")
                lm8 = copy.deepcopy(ag.lm)
                lm8.decode_kernels = "int8"
                report["tasks_int8"], report["task_seconds_int8"] = task_rows(
                    AudioGen(lm8, ag.codec, model_dir=ag.model_dir), smoke=cfg.smoke, load_seconds=load_seconds)
        if cfg.busy is not None and device.type == "cpu":
            log("a busy machine: one core spinning beside the codec, decode and tasks ...")
            report["busy"] = busy_rows(ag, cfg, device, load_seconds)
        report["default_model"] = str(ag.model_dir)
        if cfg.startup:
            log("start-up: --help, and a render's first line and first bar on a terminal ...")
            report["startup"] = startup_rows(cfg.model, smoke=cfg.smoke)
    report["decode"] = rows
    log("training throughput ...")
    report["training"] = train_throughput(reference, device, limits, smoke=cfg.smoke)
    return report


def _busy_lines(report: dict[str, Any]) -> list[str]:
    """Each busy figure beside its idle one: `x (0.85 of idle)`."""
    busy = report.get("busy")
    if not isinstance(busy, dict):
        return []
    idle: dict[str, float] = dict(report.get("codec", {}))
    idle.update(report.get("tasks", {}))
    for row in report["decode"]:
        if row["model"] == "default" and row["dtype"] == "fp32":
            idle[f"decode_batch_{row['batch']}_steps_per_s"] = row["steps_per_s"]
    lines = []
    for mode, title in (("adaptive", "adapting threads"), ("fixed", "AUDIOGEN_ADAPTIVE_THREADS=0")):
        flat = {**busy[mode]["codec"], **busy[mode].get("tasks", {}),
                **{k: v for k, v in busy[mode].items() if k.startswith("decode")}}
        cells = [f"{k} {v:.1f}" + (f" ({v / idle[k]:.2f} of idle)" if idle.get(k) else "") for k, v in flat.items()]
        nice = report["config"].get("busy") or 0
        lines.append(f"busy machine (one core spinning beside, nice {nice}), {title}: " + ", ".join(cells))
    return lines


def format_report(report: dict[str, Any]) -> str:
    lines = []
    m, lim = report["machine"], report["limits"]
    lines.append(f"machine: {m['device']} ({m['threads']} threads{', ' + m['gpu'] if m['gpu'] else ''}), "
                 f"torch {m['torch']}")
    lines.append(f"limits: bandwidth {lim['bandwidth_gbs']:.1f} GB/s, matmul fp32 {lim['fp32_gflops']:.0f} GFLOP/s, "
                 f"bf16 {lim['bf16_gflops']:.0f} GFLOP/s")
    if isinstance(report.get("musicgen"), str):
        lines.append(f"musicgen: {report['musicgen']}")
    header = ["model", "dtype", "batch", "steps/s", "frames/s", "x realtime", "limit steps/s", "of limit",
              "musicgen steps/s", "ours/musicgen"]
    keys = ["model", "dtype", "batch", "steps_per_s", "frames_per_s", "audio_x_realtime", "limit_steps_per_s",
            "fraction_of_limit", "musicgen_steps_per_s", "ours_over_musicgen"]
    table = [header]
    for row in report["decode"]:
        cells = []
        for key in keys:
            value = row.get(key, "")
            if key == "fraction_of_limit" and value != "":
                cells.append(f"{100 * value:.0f}%")
            elif isinstance(value, float):
                cells.append(f"{value:.2f}" if key == "ours_over_musicgen" else f"{value:.1f}")
            else:
                cells.append(str(value))
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in table]
    for section, title in (("codec", "codec"), ("tasks", "tasks"), ("tasks_bf16", "tasks with --dtype bf16"),
                           ("tasks_int8", "tasks with --dtype int8")):
        if isinstance(report.get(section), dict):
            lines.append(f"{title}: " + ", ".join(f"{k} {v:.1f}" for k, v in report[section].items()))
    for section, title in (("task_seconds", "task time (s)"), ("task_seconds_bf16", "task time with --dtype bf16 (s)"),
                           ("task_seconds_int8", "task time with --dtype int8 (s)")):
        for task, spent in report.get(section, {}).items():
            lines.append(f"{title}, {task}: " + ", ".join(f"{k} {v:.2f}" for k, v in spent.items()))
    lines += _busy_lines(report)
    if isinstance(report.get("startup"), dict):
        st = report["startup"]
        line, first_bar = (f"{st[k]:.2f}" if k in st else "none" for k in ("first_line_seconds", "first_bar_seconds"))
        lines.append(f"start-up (s): --help {st['help_seconds']:.2f}, render's first line {line} "
                     f"and first bar {first_bar} on a terminal")
    if isinstance(report.get("default_model"), str) and report["default_model"].startswith("not"):
        lines.append(f"default model: {report['default_model']}")
    t = report["training"]
    lines.append(f"training (reference size, {t['precision']}, batch {t['batch']} x {t['frames']} frames): "
                 f"{t['tokens_per_s']:.0f} tokens/s, MFU {100 * t['mfu']:.1f}%")
    return "\n".join(lines)
