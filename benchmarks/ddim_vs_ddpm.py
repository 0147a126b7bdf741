"""Does few-step DDIM match 1000-step DDPM? (DESIGN bar; LDNS §11.4 last item)

Samples a trained diffusion run with both samplers, then prints one JSON object with
  - each sampler's metrics against the real split,
  - DDIM vs DDPM metrics, and the data-vs-data noise floor of the real split,
  - for every error metric, whether |DDIM - DDPM| against the data is within the floor.

    python benchmarks/ddim_vs_ddpm.py --home neuralcli-home --model diffusion-lorenz-quick \
        --real lorenz:test --n 1000 --ddim-steps 50

A conditioned model samples with the conditions of a split's trials (`--from`, e.g. the
velocities of synthetic-maze:test); compare it with the same split (`--real`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from neuralcli.evaluation.spike_stats import compare_spikes, noise_floor
from neuralcli.pipelines.data import load_spikes
from neuralcli.pipelines.runs import resolve_run_dir
from neuralcli.pipelines.sample import ConditionRequest, sample_spikes
from neuralcli.runtime.device import resolve_runtime
from neuralcli.runtime.home import resolve_home

ERRORS = (
    "kl_population_count",
    "rmse_correlation",
    "rmse_mean_isi",
    "rmse_std_isi",
    "mean_rate_error",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None)
    parser.add_argument("--model", required=True)
    parser.add_argument("--real", default="lorenz:test")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--ddim-steps", type=int, default=50)
    parser.add_argument("--eta", type=float, default=1.0, help="DDIM eta")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--from", dest="condition_from", default=None, help="dataset:split giving the conditions"
    )
    args = parser.parse_args()

    home = resolve_home(args.home)
    runtime = resolve_runtime(device=args.device, precision=args.precision, seed=args.seed)
    run_dir = resolve_run_dir(args.model, home)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for sampler, steps in (("ddpm", None), ("ddim", args.ddim_steps)):
            result = sample_spikes(
                run_dir,
                runtime=runtime,
                n=args.n,
                sampler=sampler,
                steps=steps,
                eta=args.eta,
                out=Path(tmp) / f"{sampler}.npz",
                write_nwb=False,
                condition=ConditionRequest(from_split=args.condition_from),
                home=home,
            )
            runs[sampler] = (load_spikes(result.npz_path, home), result.seconds)
        data = load_spikes(args.real, home, prefer_data=runs["ddpm"][0].metadata.get("data"))
    bin_seconds = data.bin_seconds or 1.0
    vs_data = {
        name: compare_spikes(loaded.spikes, data.spikes, bin_seconds=bin_seconds).to_dict()
        for name, (loaded, _) in runs.items()
    }
    floor = noise_floor(data.spikes, bin_seconds=bin_seconds).to_dict()
    ddim_vs_ddpm = compare_spikes(
        runs["ddim"][0].spikes, runs["ddpm"][0].spikes, bin_seconds=bin_seconds
    ).to_dict()
    within = {key: abs(vs_data["ddim"][key] - vs_data["ddpm"][key]) <= floor[key] for key in ERRORS}
    print(
        json.dumps(
            {
                "benchmark": "ddim_vs_ddpm",
                "model": str(run_dir),
                "real": args.real,
                "n": args.n,
                "ddim_steps": args.ddim_steps,
                "eta": args.eta,
                "seconds": {name: round(sec, 2) for name, (_, sec) in runs.items()},
                "ddpm_vs_data": vs_data["ddpm"],
                "ddim_vs_data": vs_data["ddim"],
                "ddim_vs_ddpm": ddim_vs_ddpm,
                "floor": floor,
                "difference_within_floor": within,
                "all_within_floor": all(within.values()),
            },
            default=float,
        )
    )


if __name__ == "__main__":
    main()
