"""Sampling speed: DDPM-1000 vs DDIM-N for a batch of Lorenz-sized latents.

Prints one JSON object: seconds and samples/s per sampler, peak RSS, settings.
Uses a freshly initialised Lorenz denoiser (C=64, 4 blocks, d=8): the cost of a step does not
depend on the weights.

    python benchmarks/bench_sampling.py --n 100 --length 256 --ddim-steps 50
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import torch

from neuralcli.diffusion.sampling import make_scheduler, sample_latents
from neuralcli.models.denoiser import Denoiser, DenoiserConfig
from neuralcli.runtime.allocator import tune_allocator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--skip-ddpm", action="store_true", help="only time DDIM")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's malloc defaults (`neuralcli sample` tunes them: runtime/allocator.py)",
    )
    args = parser.parse_args()
    malloc_tuned = False if args.default_malloc else tune_allocator()  # as the CLI does

    torch.manual_seed(0)
    config = DenoiserConfig(latent_channels=8, hidden_channels=64, num_blocks=4)
    model = Denoiser(config=config).eval()
    dtype = torch.bfloat16 if args.precision == "bf16" else None

    def autocast():
        if dtype is None:
            import contextlib

            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=dtype)

    results = {}
    samplers = [("ddim", args.ddim_steps)] + ([] if args.skip_ddpm else [("ddpm", 1000)])
    for name, steps in samplers:
        scheduler = make_scheduler(name, num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02)
        started = time.perf_counter()
        sample_latents(
            model,
            scheduler,
            n=args.n,
            length=args.length,
            channels=config.latent_channels,
            device=torch.device("cpu"),
            num_inference_steps=steps,
            batch_size=args.batch_size,
            generator=torch.Generator().manual_seed(0),
            autocast=autocast,
        )
        seconds = time.perf_counter() - started
        results[f"{name}_{steps}"] = {
            "seconds": round(seconds, 3),
            "samples_per_s": round(args.n / seconds, 3),
            "steps_per_s": round(steps / seconds, 3),
        }
    print(
        json.dumps(
            {
                "benchmark": "sampling",
                "results": results,
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "settings": {
                    "n": args.n,
                    "length": args.length,
                    "batch_size": args.batch_size,
                    "precision": args.precision,
                    "model": "denoiser C=64 blocks=4 d=8",
                    "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    "machine": platform.processor() or platform.machine(),
                    "malloc_tuned": malloc_tuned,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
