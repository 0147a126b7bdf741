"""Training-step speed of the LDNS autoencoder and denoiser at the published Lorenz sizes.

Prints one JSON object: per model samples/s (median over timed steps after warm-up), peak
RSS, the step's achieved GFLOP/s (matmul FLOPs counted by FlopCounterMode on one step) next
to a plain fp32 matmul's GFLOP/s on this machine, torch threads, and the settings.

Each model runs in its own subprocess so the peak RSS values are separate.

    python benchmarks/bench_training.py --which all --precision fp32 --threads 2

A full step is what the training loop does: (AE) mask + forward + loss + backward + clip 2.0 +
AdamW + LambdaLR; (denoiser) noise + forward + loss + backward + clip 1.0 + AdamW + LambdaLR
+ an EMA update (lerp_ of a float32 parameter copy).

`--thp` sets THP_MEM_ALLOC_ENABLE=1 for the child processes (torch then backs large CPU
allocations with transparent huge pages). It is there for comparison: since the fused blocks
reuse pooled buffers (models/layers/buffer_pool.py), huge pages have made steps slower here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from machine_speed import plain_matmul_gflops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", choices=("ae", "denoiser", "all"), default="all")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 64 AE, 512 denoiser")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after 3 warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--thp", action="store_true", help="THP_MEM_ALLOC_ENABLE=1 in the children")
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's malloc defaults (LDNS commands tune them: runtime/allocator.py)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args)))
        return
    models = ("ae", "denoiser") if args.which == "all" else (args.which,)
    env = dict(os.environ)
    if args.thp:
        env["THP_MEM_ALLOC_ENABLE"] = "1"
    results = {}
    for which in models:
        command = [sys.executable, __file__, "--child", "--which", which]
        command += ["--precision", args.precision, "--steps", str(args.steps)]
        command += ["--threads", str(args.threads)]
        command += ["--default-malloc"] if args.default_malloc else []
        if args.batch_size is not None:
            command += ["--batch-size", str(args.batch_size)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"benchmark of {which} failed (exit {done.returncode})")
        results[which] = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        json.dumps(
            {
                "benchmark": "training_step",
                "precision": args.precision,
                "threads": args.threads,
                "thp_mem_alloc": args.thp,
                "results": results,
                "machine": {"python": platform.python_version(), "processor": platform.machine()},
            }
        )
    )


def run_child(args: argparse.Namespace) -> dict:
    import torch

    from neuralcli.runtime.allocator import tune_allocator

    malloc_tuned = False if args.default_malloc else tune_allocator()  # as the CLI does
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.which == "ae":
        batch_size = args.batch_size or 64
        step, settings = _autoencoder_step(torch, batch_size, args.precision)
    else:
        batch_size = args.batch_size or 512
        step, settings = _denoiser_step(torch, batch_size, args.precision)

    for _ in range(3):
        step()
    times, cpu_times = [], []
    for _ in range(args.steps):
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        step()
        times.append(time.perf_counter() - started)
        cpu_times.append(_cpu_seconds() - cpu_started)
    median = statistics.median(times)
    # Peak of the training steps only: counting FLOPs below imports and allocates more.
    max_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    step_flops = counter.get_total_flops()
    plain_gflops = plain_matmul_gflops(torch)
    return {
        "model": args.which,
        "batch_size": batch_size,
        "samples_per_s": batch_size / median,
        "step_s_median": median,
        "step_s_all": [round(t, 4) for t in times],
        # user + system CPU seconds of the process per step: a check on wall times taken
        # while other processes compete for the cores
        "step_cpu_s_median": statistics.median(cpu_times),
        "load_average_1min": os.getloadavg()[0],
        "peak_rss_mb": round(max_rss_kib * 1024 / 1e6, 1),
        "peak_rss_mib": round(max_rss_kib / 1024, 1),
        "step_gflop_counted": step_flops / 1e9,
        "achieved_gflops": step_flops / median / 1e9,
        "plain_matmul_fp32_gflops": plain_gflops,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "precision": args.precision,
        "malloc_tuned": malloc_tuned,
        "settings": settings,
    }


def _autocast(torch, precision: str):
    import contextlib

    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _warmup_cosine(torch, optimizer):
    warmup, horizon = 70, 1820  # Lorenz AE: 70 warm-up steps, 1400·1.3 horizon (LDNS §12)

    def factor(step: int) -> float:
        import math

        if step < warmup:
            return step / warmup
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / (horizon - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _autoencoder_step(torch, batch_size: int, precision: str):
    from neuralcli.models.autoencoder import AutoencoderConfig, SpikeAutoencoder
    from neuralcli.training.ae_objective import AutoencoderLossConfig, AutoencoderObjective
    from neuralcli.training.optimizer import AdamW

    config = AutoencoderConfig()
    model = SpikeAutoencoder(config=config).train()
    objective = AutoencoderObjective(config=AutoencoderLossConfig())
    optimizer = AdamW(model.parameter_groups(0.01), lr=1e-3)
    scheduler = _warmup_cosine(torch, optimizer)
    params = [p for p in model.parameters() if p.requires_grad]
    length = 256
    batch = torch.poisson(torch.full((batch_size, length, config.n_neurons), 0.15))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(torch, precision):
            out = objective.training_loss(model, batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 2.0)
        optimizer.step()
        scheduler.step()

    settings = {
        "config": vars(config),
        "length": length,
        "grad_clip": 2.0,
        "parameters": sum(p.numel() for p in params),
    }
    return step, settings


def _denoiser_step(torch, batch_size: int, precision: str):
    from neuralcli.models.denoiser import Denoiser, DenoiserConfig
    from neuralcli.training.optimizer import AdamW

    config = DenoiserConfig()
    model = Denoiser(config=config).train()
    try:
        from neuralcli.training.diffusion_objective import DiffusionLossConfig, DiffusionObjective

        objective = DiffusionObjective(config=DiffusionLossConfig())
        loss_fn = lambda batch: objective.training_loss(model, batch).loss  # noqa: E731
        noising = "DiffusionObjective"
    except ImportError:
        betas = torch.linspace(1e-4, 0.02, 1000)
        alpha_bar = torch.cumprod(1.0 - betas, dim=0)

        def loss_fn(batch):
            t = torch.randint(0, 1000, (batch.shape[0],))
            eps = torch.randn_like(batch)
            ab = alpha_bar[t][:, None, None]
            noisy = ab.sqrt() * batch + (1.0 - ab).sqrt() * eps  # DDPM eq. 4
            return torch.nn.functional.mse_loss(model(noisy, t).float(), eps)

        noising = "inline DDPM"
    optimizer = AdamW(model.parameter_groups(0.01), lr=1e-3)
    scheduler = _warmup_cosine(torch, optimizer)
    params = [p for p in model.parameters() if p.requires_grad]
    shadow = [p.detach().float().clone() for p in params]
    length = 256
    batch = torch.randn(batch_size, length, config.latent_channels)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(torch, precision):
            loss = loss_fn(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            for ema, p in zip(shadow, params, strict=True):
                ema.lerp_(p.detach().float(), 1.0 - 0.999)

    settings = {
        "config": vars(config),
        "length": length,
        "grad_clip": 1.0,
        "objective": noising,
        "parameters": sum(p.numel() for p in params),
    }
    return step, settings


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
