"""Speed and memory of LDNS at the published MC_Maze sizes (presets monkey, monkey-velocity).

Prints one JSON object per measurement, each taken in its own subprocess so that its peak
RSS is its own:

- `ae`: one training step of the monkey autoencoder (preset monkey: 182 neurons, C = 256,
  d = 16, 4 causal blocks) on (64, 140, 182) Poisson counts: coordinated-dropout mask +
  forward + AutoencoderObjective (p 0.5, β 0.001 / 0.2) + backward + clip 2.0 + AdamW +
  warm-up/cosine LR, as the training loop does it;
- `velocity`: one training step of the velocity-conditioned denoiser (preset
  monkey-velocity: C = 256, 6 blocks, Cin = 16 + 2) on ConditionedLatents of (512, 140, 16)
  latents and (512, 140, 2) velocities: noise + forward + SmoothL1(β 0.05) + backward +
  clip 1.0 + AdamW + LR schedule + EMA update;
- `ae-vs-unfused`: the `ae` step alternated, in one process, with the same step on the same
  model computed without the fused blocks (plain autograd through every op, FFT convolution:
  the path neuralcli takes for inputs longer than the Toeplitz limit). The per-round ratio of
  step times is our speed-up over that composition, measured in the same machine state (this
  shared machine's speed drifts by ±20 % from one run to the next, which moves samples/s but
  not the ratio);
- `ddpm`, `ddim`: sampling the unconditional monkey denoiser (preset monkey) with DDPM-1000
  and with DDIM-N through neuralcli.diffusion.sampling.sample_latents; then a `sampling`
  object with the cost ratio of DDIM to DDPM-1000 per trial.

Training steps report samples/s from the median of the timed steps after `--warmup` untimed
ones. DDPM-1000 of 100 trials takes minutes on 2 cores: `--ddpm-timed-steps K` runs only the
first K of the 1000 steps and extrapolates 1000 × the median step time (the JSON says so);
a denoiser step costs the same at every timestep. Weights are freshly initialised: the cost
of a step does not depend on them.

    python benchmarks/bench_ldns_monkey.py --threads 2 --steps 5 --warmup 2
    python benchmarks/bench_ldns_monkey.py --which sampling --sample-n 100 --ddpm-timed-steps 20
    python benchmarks/bench_ldns_monkey.py --which ae-vs-unfused --steps 8

Reference on the 2-core CPU this was written on (fp32, 2 threads), and the bars each result
is checked against (`meets_bar`; only meaningful at those settings): AE 61 samples/s and
1.6 GB -> bars >= 79 samples/s, <= 800 MB; velocity denoiser 24 samples/s and 7.9 GB ->
bars >= 48 samples/s, <= 3950 MB; 100 DDPM-1000 samples in about 800 s -> bar: DDIM of 2008
trials under 1/10 of DDPM-1000's time for 2008 trials (cost is linear in trials, so the
ratio per trial is compared). Peak RSS is reported in MB of 10^6 bytes and in MiB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from machine_speed import plain_matmul_gflops

MEASUREMENTS = ("ae", "ae_vs_unfused", "velocity", "ddpm", "ddim")
# The bars of the issue, for CPU fp32 at 2 threads (module docstring).
BARS = {
    "ae": {"reference_samples_per_s": 61.0, "reference_peak_rss_mb": 1600.0,
           "min_samples_per_s": 79.0, "max_peak_rss_mb": 800.0},
    "velocity": {"reference_samples_per_s": 24.0, "reference_peak_rss_mb": 7900.0,
                 "min_samples_per_s": 48.0, "max_peak_rss_mb": 3950.0},
}  # fmt: skip
MAX_DDIM_OVER_DDPM = 0.1
MC_MAZE_TRAIN_TRIALS = 2008  # LDNS §12 split 2008/71/216: steps per epoch of the LR schedule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--which", choices=("ae", "ae-vs-unfused", "velocity", "sampling", "all"), default="all"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument(
        "--steps", type=int, default=5, help="timed training steps (ae-vs-unfused: of each)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed training steps first")
    parser.add_argument("--length", type=int, default=140, help="bins per trial (MC_Maze: 140)")
    parser.add_argument("--sample-n", type=int, default=100, help="trials sampled with DDIM")
    parser.add_argument(
        "--ddpm-n", type=int, default=None, help="trials sampled with DDPM (default: --sample-n)"
    )
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument(
        "--ddpm-timed-steps",
        type=int,
        default=1000,
        help="run only this many of DDPM's 1000 steps and extrapolate (default: all 1000)",
    )
    parser.add_argument("--sample-batch-size", type=int, default=512)
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's malloc defaults (LDNS commands tune them: runtime/allocator.py)",
    )
    parser.add_argument("--child", choices=MEASUREMENTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddpm_n is None:
        args.ddpm_n = args.sample_n
    if not 1 <= args.ddpm_timed_steps <= 1000:
        parser.error("--ddpm-timed-steps must be in 1..1000")
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be >= 1 and --warmup >= 0")
    if args.child is not None:
        print(json.dumps(run_child(args)), flush=True)
        return

    chosen = {
        "ae": ("ae",),
        "ae-vs-unfused": ("ae_vs_unfused",),
        "velocity": ("velocity",),
        "sampling": ("ddpm", "ddim"),
        "all": MEASUREMENTS,
    }[args.which]
    results = {}
    for which in chosen:
        command = [sys.executable, os.path.abspath(__file__), "--child", which]
        for flag in ("device", "precision", "threads", "steps", "warmup", "length", "sample_n"):
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        command += ["--ddpm-n", str(args.ddpm_n), "--ddim-steps", str(args.ddim_steps)]
        command += ["--ddpm-timed-steps", str(args.ddpm_timed_steps)]
        command += ["--sample-batch-size", str(args.sample_batch_size)]
        command += ["--default-malloc"] if args.default_malloc else []
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"benchmark {which} failed (exit {done.returncode})")
        results[which] = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(results[which]), flush=True)
    if "ddpm" in results and "ddim" in results:
        print(json.dumps(compare_samplers(results["ddpm"], results["ddim"])), flush=True)


def run_child(args: argparse.Namespace) -> dict:
    import torch

    from neuralcli.runtime.allocator import tune_allocator
    from neuralcli.runtime.device import Runtime, resolve_device, resolve_precision

    malloc_tuned = False if args.default_malloc else tune_allocator()  # as the CLI does
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = resolve_device(args.device)
    runtime = Runtime(device=device, precision=resolve_precision(args.precision, device))
    if args.child == "ae":
        result = _training_benchmark(torch, runtime, args, *_autoencoder_step(torch, runtime, args))
    elif args.child == "ae_vs_unfused":
        result = _fused_vs_unfused_benchmark(torch, runtime, args)
    elif args.child == "velocity":
        result = _training_benchmark(torch, runtime, args, *_velocity_step(torch, runtime, args))
    else:
        result = _sampling_benchmark(torch, runtime, args)
    result.update(_process_stats(torch, device))
    if args.child in BARS:
        bar = BARS[args.child]
        result["bar"] = bar
        result["meets_bar"] = {
            "samples_per_s": result["samples_per_s"] >= bar["min_samples_per_s"],
            "peak_rss_mb": result["peak_rss_mb"] <= bar["max_peak_rss_mb"],
        }
    result["settings"].update(
        {
            "device": str(device),
            "precision": runtime.precision,
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "malloc_tuned": malloc_tuned,
        }
    )
    return result


def _synchronize(torch, device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _training_benchmark(torch, runtime, args, step: Callable[[], None], settings: dict) -> dict:
    on_cpu = runtime.device.type == "cpu"
    matmul_before = plain_matmul_gflops(torch) if on_cpu else None
    for _ in range(args.warmup):
        step()
    _synchronize(torch, runtime.device)
    times, cpu_times = [], []
    for _ in range(args.steps):
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        step()
        _synchronize(torch, runtime.device)
        times.append(time.perf_counter() - started)
        cpu_times.append(_cpu_seconds() - cpu_started)
    median = statistics.median(times)
    matmul_after = plain_matmul_gflops(torch) if on_cpu else None
    return {
        "benchmark": f"ldns_monkey_{args.child}_training",
        "batch_size": settings["batch_size"],
        "samples_per_s": round(settings["batch_size"] / median, 3),
        "step_s_median": round(median, 4),
        "step_s_all": [round(t, 4) for t in times],
        # process CPU seconds per step: a check on wall times taken while other processes
        # compete for the cores (≈ threads × wall time when the cores are free)
        "step_cpu_s_median": round(statistics.median(cpu_times), 4),
        # the machine's state: a plain 2048² fp32 matmul right before and after the steps
        # (this shared machine has given 86-164 GFLOP/s for it from one run to the next)
        "plain_matmul_fp32_gflops": {"before": matmul_before, "after": matmul_after},
        "settings": settings,
    }


def _schedule(torch, optimizer, training, n_train: int):
    """The loop's warm-up/cosine schedule at the run's real step counts (LDNS §12)."""
    from neuralcli.training.schedule import build_warmup_cosine, schedule_steps

    plan = schedule_steps(
        n_train,
        batch_size=training.batch_size,
        world_size=1,
        epochs=training.epochs,
        warmup_epochs=training.warmup_epochs,
        lr_horizon_factor=training.lr_horizon_factor,
    )
    return build_warmup_cosine(
        optimizer, warmup_steps=plan.warmup_steps, horizon_steps=plan.horizon_steps
    )


def _optimizer(torch, model, training, device):
    """AdamW as the training loop builds it: S4D A and dt without weight decay."""
    from neuralcli.training.optimizer import AdamW

    return AdamW(
        model.parameter_groups(training.weight_decay),
        lr=training.lr,
        betas=tuple(training.adam_betas),
        weight_decay=training.weight_decay,
        fused=device.type == "cuda" or None,
    )


def _fused_vs_unfused_benchmark(torch, runtime, args) -> dict:
    """The AE step fused and unfused, one of each per round, the first of the two alternating."""
    torch.manual_seed(0)
    fused_step, settings = _autoencoder_step(torch, runtime, args)
    settings.pop("fused_blocks")  # both are timed
    torch.manual_seed(0)  # the same initial weights
    steps = {
        "fused": fused_step,
        "unfused": _autoencoder_step(torch, runtime, args, unfused=True)[0],
    }
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_index in range(args.steps):
        order = ("fused", "unfused") if round_index % 2 == 0 else ("unfused", "fused")
        for name in order:
            started = time.perf_counter()
            steps[name]()
            _synchronize(torch, runtime.device)
            times[name].append(time.perf_counter() - started)
    ratios = [u / f for f, u in zip(times["fused"], times["unfused"], strict=True)]
    batch = settings["batch_size"]
    return {
        "benchmark": "ldns_monkey_ae_fused_vs_unfused",
        "batch_size": batch,
        "fused_samples_per_s": round(batch / statistics.median(times["fused"]), 3),
        "unfused_samples_per_s": round(batch / statistics.median(times["unfused"]), 3),
        "fused_step_s_all": [round(t, 4) for t in times["fused"]],
        "unfused_step_s_all": [round(t, 4) for t in times["unfused"]],
        # unfused step time / fused step time, per round (both steps in the same machine state)
        "speedup_per_round": [round(r, 3) for r in ratios],
        "speedup_median": round(statistics.median(ratios), 3),
        "settings": settings,
    }


def _autoencoder_step(torch, runtime, args, *, unfused: bool = False):
    """One monkey-AE training step as a closure, and its settings.

    unfused: every block takes its plain autograd path with the FFT convolution (the path of
    inputs longer than the Toeplitz limit) instead of the fused Toeplitz block.
    """
    from neuralcli.config.schemas import stage_config
    from neuralcli.models.autoencoder import SpikeAutoencoder
    from neuralcli.training.ae_objective import AutoencoderObjective

    config = stage_config("monkey", "ae")
    training = config.training
    device = runtime.device
    model = SpikeAutoencoder(config=config.model).to(device).train()
    if unfused:
        for block in model.blocks:
            block.s4.direct_max_length = 0  # uses_toeplitz(L) is False for every L
    objective = AutoencoderObjective(config=config.loss)
    optimizer = _optimizer(torch, model, training, device)
    scheduler = _schedule(torch, optimizer, training, MC_MAZE_TRAIN_TRIALS)
    params = [p for p in model.parameters() if p.requires_grad]
    shape = (training.batch_size, args.length, config.model.n_neurons)
    # MC_Maze counts per 5 ms bin are mostly 0 or 1; the cost does not depend on the values.
    batch = torch.poisson(torch.full(shape, 0.1)).to(device)  # (B, T, N)

    def step() -> None:
        with runtime.autocast():
            out = objective.training_loss(model, batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, training.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()

    settings = {
        "preset": "monkey",
        "batch_size": training.batch_size,
        "length": args.length,
        "model": vars(config.model),
        "loss": vars(config.loss),
        "grad_clip": training.grad_clip,
        "parameters": sum(p.numel() for p in params),
        "fused_blocks": not unfused,
    }
    return step, settings


def _velocity_step(torch, runtime, args):
    from neuralcli.config.schemas import stage_config
    from neuralcli.data.datasets import ConditionedLatents
    from neuralcli.models.denoiser import Denoiser
    from neuralcli.training.diffusion_objective import DiffusionObjective
    from neuralcli.training.ema import EMA

    config = stage_config("monkey-velocity", "diffusion")
    training = config.training
    device = runtime.device
    model = Denoiser(config=config.model).to(device).train()
    objective = DiffusionObjective(config=config.loss)
    optimizer = _optimizer(torch, model, training, device)
    scheduler = _schedule(torch, optimizer, training, MC_MAZE_TRAIN_TRIALS)
    ema = EMA(model, min_decay=training.ema_min_decay, max_decay=training.ema_max_decay)
    params = [p for p in model.parameters() if p.requires_grad]
    size = (training.batch_size, args.length)
    batch = ConditionedLatents(
        latents=torch.randn(*size, config.model.latent_channels, device=device),  # (B, T, d)
        velocity=0.3 * torch.randn(*size, 2, device=device),  # (B, T, 2) m/s, |v| ≲ 1.2
    )
    taken = 0

    def step() -> None:
        nonlocal taken
        with runtime.autocast():
            out = objective.training_loss(model, batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, training.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        taken += 1
        ema.update(model, taken - 1)  # as the loop: 0-based count of earlier steps (LDNS §8)

    settings = {
        "preset": "monkey-velocity",
        "batch_size": training.batch_size,
        "length": args.length,
        "model": vars(config.model),
        "loss": vars(config.loss),
        "grad_clip": training.grad_clip,
        "ema": True,
        "parameters": sum(p.numel() for p in params),
    }
    return step, settings


class _StopSampling(Exception):
    """Raised from on_step to end a DDPM run after the timed steps."""


def _sampling_benchmark(torch, runtime, args) -> dict:
    from neuralcli.config.schemas import stage_config
    from neuralcli.diffusion.sampling import make_scheduler, sample_latents
    from neuralcli.models.denoiser import Denoiser

    config = stage_config("monkey", "diffusion")
    model = Denoiser(config=config.model).to(runtime.device).eval()
    sampler = args.child
    total_steps = 1000 if sampler == "ddpm" else args.ddim_steps
    timed_steps = args.ddpm_timed_steps if sampler == "ddpm" else total_steps
    n = args.ddpm_n if sampler == "ddpm" else args.sample_n
    scheduler = make_scheduler(
        sampler,
        num_train_timesteps=config.loss.num_train_timesteps,
        beta_start=config.loss.beta_start,
        beta_end=config.loss.beta_end,
    )
    stamps: list[float] = []

    def on_step(done: int, total: int) -> None:
        _synchronize(torch, runtime.device)
        stamps.append(time.perf_counter())
        if done >= timed_steps and done < total:
            raise _StopSampling

    started = time.perf_counter()
    with contextlib.suppress(_StopSampling):
        sample_latents(
            model,
            scheduler,
            n=n,
            length=args.length,
            channels=config.model.latent_channels,
            device=runtime.device,
            num_inference_steps=None if sampler == "ddpm" else total_steps,
            batch_size=args.sample_batch_size,
            generator=torch.Generator().manual_seed(0),
            autocast=runtime.autocast,
            on_step=on_step,
        )
    measured = stamps[-1] - started
    step_times = [b - a for a, b in zip([started, *stamps[:-1]], stamps, strict=True)]
    extrapolated = timed_steps < total_steps
    # Extrapolate from the median step: the first step also pays one-off allocation costs.
    seconds = statistics.median(step_times) * total_steps if extrapolated else measured
    return {
        "benchmark": f"ldns_monkey_sampling_{sampler}",
        "sampler": sampler,
        "n": n,
        "steps": total_steps,
        "steps_measured": len(stamps),
        "measured_seconds": round(measured, 3),
        "step_s_median": round(statistics.median(step_times), 4),
        "seconds": round(seconds, 3),
        "extrapolated": extrapolated,
        "seconds_per_trial": round(seconds / n, 4),
        "samples_per_s": round(n / seconds, 4),
        "settings": {
            "preset": "monkey",
            "length": args.length,
            "batch_size": args.sample_batch_size,
            "model": vars(config.model),
            "parameters": sum(p.numel() for p in model.parameters()),
        },
    }


def compare_samplers(ddpm: dict, ddim: dict) -> dict:
    """DDIM vs DDPM-1000 per trial, and both scaled to the 2008 trials of Table 1 (LDNS §11.2)."""
    ratio = ddim["seconds_per_trial"] / ddpm["seconds_per_trial"]
    return {
        "benchmark": "ldns_monkey_sampling",
        "ddpm_seconds_2008": round(ddpm["seconds_per_trial"] * MC_MAZE_TRAIN_TRIALS, 1),
        "ddim_seconds_2008": round(ddim["seconds_per_trial"] * MC_MAZE_TRAIN_TRIALS, 1),
        "ddim_over_ddpm": round(ratio, 5),
        "scaled_linearly_to_2008": ddpm["n"] != MC_MAZE_TRAIN_TRIALS
        or ddim["n"] != MC_MAZE_TRAIN_TRIALS,
        "ddpm_extrapolated_from_steps": ddpm["steps_measured"] if ddpm["extrapolated"] else None,
        "ddim_steps": ddim["steps"],
        "bar": {"max_ddim_over_ddpm": MAX_DDIM_OVER_DDPM},
        "meets_bar": ratio < MAX_DDIM_OVER_DDPM,
    }


def _process_stats(torch, device) -> dict:
    max_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    stats = {
        "peak_rss_mb": round(max_rss_kib * 1024 / 1e6, 1),
        "peak_rss_mib": round(max_rss_kib / 1024, 1),
        "load_average_1min": os.getloadavg()[0],
    }
    if device.type == "cuda":
        stats["peak_cuda_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / 1e6, 1)
    return stats


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
