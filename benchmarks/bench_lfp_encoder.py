"""Training-step speed and peak memory of the LFP encoder at the published configuration.

The published LFP encoder (distillation §11): S = 32 channels per patch, d = 256, 8 heads,
causal-conv value embedding (kernel 5, dilation 2), 5 s windows at 10 ms (T = 500) of 96
channels (P = 3) = 1500 tokens. A step is what LFP pretraining does: tokenizer (lfp-conv) +
transformer encoder + a Linear(d → S) reconstruction readout + MSE + backward + grad clip 1.0 +
AdamW. Prints ONE JSON object: per precision the median seconds/step over the timed steps
(after one warm-up step), samples/s, peak RSS, the step's achieved GFLOP/s (FLOPs counted once
with FlopCounterMode) next to a plain matmul's GFLOP/s in the same precision at the MLP's
shape, and the reference implementation's figures with our ratios to them.

Each precision runs in its own subprocess so the peak RSS values are separate.

    python benchmarks/bench_lfp_encoder.py --layers 6 --batch-size 32 --steps 2 --precision both
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

from machine_speed import matmul_gflops

# The reference encoder on the 2-core development machine, 6 layers, batch 32, fp32 (issue).
REFERENCE = {"layers": 6, "step_s": 47.0, "samples_per_s": 0.68, "peak_rss_mb": 11.5 * 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after 1 warm-up)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "both"), default="both")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels", type=int, default=96)
    parser.add_argument("--steps-per-window", type=int, default=500, help="T (10 ms bins)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args)))
        return
    precisions = ("fp32", "bf16") if args.precision == "both" else (args.precision,)
    results = {}
    for precision in precisions:
        command = [sys.executable, __file__, "--child", "--precision", precision]
        for name in ("layers", "batch_size", "steps", "threads", "channels", "steps_per_window"):
            command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"benchmark at {precision} failed (exit {done.returncode})")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["vs_reference_fp32"] = {
            "speedup": REFERENCE["step_s"] / result["step_s_median"],
            "peak_rss_fraction": result["peak_rss_mb"] / REFERENCE["peak_rss_mb"],
            "comparable": args.layers == REFERENCE["layers"] and args.batch_size == 32,
        }
        results[precision] = result
    print(
        json.dumps(
            {
                "benchmark": "lfp_encoder_training_step",
                "layers": args.layers,
                "batch_size": args.batch_size,
                "threads": args.threads,
                "reference_fp32": REFERENCE,
                "targets": {"fp32_step_s": 47.0, "bf16_step_s": 47.0 / 1.8, "peak_rss_mb": 5.75e3},
                "results": results,
                "load_average_1min_end": os.getloadavg()[0],
                "machine": {
                    "python": platform.python_version(),
                    "processor": platform.machine(),
                    "cpus": os.cpu_count(),
                },
            }
        )
    )


def run_child(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    step, settings = _lfp_step(torch, args)
    load_start = os.getloadavg()[0]
    step()
    times, cpu_times = [], []
    for _ in range(args.steps):
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        step()
        times.append(time.perf_counter() - started)
        cpu_times.append(_cpu_seconds() - cpu_started)
    median = statistics.median(times)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    # FlopCounterMode has no formula for the CPU flash-attention kernels: count them as it
    # counts the CUDA ones (forward QKᵀ and PV; backward five products, the scores recomputed)
    attention_flops = _attention_flops(args, settings["tokens"] // args.batch_size)
    step_flops = counter.get_total_flops() + attention_flops
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    return {
        "precision": args.precision,
        "batch_size": args.batch_size,
        "step_s_median": median,
        "step_s_all": [round(t, 3) for t in times],
        "samples_per_s": args.batch_size / median,
        # user + system CPU seconds per step: a check on wall times taken while other
        # processes compete for the cores
        "step_cpu_s_median": statistics.median(cpu_times),
        "load_average_1min_start": load_start,
        "peak_rss_mb": peak_rss_mb,
        "step_gflop_counted": step_flops / 1e9,
        "attention_gflop_of_which": attention_flops / 1e9,
        "achieved_gflops": step_flops / median / 1e9,
        "plain_matmul_gflops": _mlp_matmul(torch, dtype, settings["tokens"]),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "settings": settings,
    }


def _lfp_step(torch, args: argparse.Namespace):
    import contextlib
    from dataclasses import asdict

    from neuralcli.models.layers.tokenizer import PatchTokenizer, TokenizerConfig
    from neuralcli.models.layers.transformer import TransformerConfig, TransformerEncoder
    from neuralcli.training.optimizer import AdamW

    tokenizer_config = TokenizerConfig(mode="lfp-conv", d_model=256, patch_size=32)
    encoder_config = TransformerConfig(d_model=256, num_layers=args.layers, num_heads=8)
    tokenizer = PatchTokenizer(config=tokenizer_config, sessions={"session": args.channels})
    encoder = TransformerEncoder(config=encoder_config)
    readout = torch.nn.Linear(256, tokenizer_config.patch_size)
    modules = torch.nn.ModuleList([tokenizer, encoder, readout]).train()
    params = [p for p in modules.parameters() if p.requires_grad]
    optimizer = AdamW(params, lr=6.25e-4, weight_decay=0.1)  # distillation §11
    batch = torch.randn(args.batch_size, args.steps_per_window, args.channels)
    session = torch.zeros(args.batch_size, dtype=torch.long)
    if args.precision == "bf16":
        autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    else:
        autocast = contextlib.nullcontext

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            tokens = tokenizer(batch, session)
            hidden = encoder(tokens.values, tokens.positions, tokens.valid)
            target = tokenizer.patchify(batch).values  # (B, T·P, S)
            loss = torch.nn.functional.mse_loss(readout(hidden).float(), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    tokens = args.batch_size * args.steps_per_window * tokenizer.n_patches(args.channels)
    settings = {
        "tokenizer": asdict(tokenizer_config),
        "encoder": asdict(encoder_config),
        "channels": args.channels,
        "steps_per_window": args.steps_per_window,
        "tokens": tokens,
        "grad_clip": 1.0,
        "parameters": sum(p.numel() for p in params),
    }
    return step, settings


def _attention_flops(args: argparse.Namespace, length: int, heads: int = 8, d: int = 256) -> int:
    products = 2 + 5  # forward QKᵀ, PV; backward QKᵀ again, dO·Vᵀ, Pᵀ·dO, dS·K, dSᵀ·Q
    return products * 2 * args.batch_size * heads * length * length * (d // heads) * args.layers


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _mlp_matmul(torch, dtype, tokens: int) -> float:
    """(tokens, d) x (d, 4d): the MLP's gate projection, the step's most common matmul."""
    return matmul_gflops(torch, tokens, 256, 1024, dtype=dtype, repeats=3)


if __name__ == "__main__":
    main()
