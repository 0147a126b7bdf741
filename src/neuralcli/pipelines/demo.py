"""`neuralcli demo`: the whole LDNS workflow on Lorenz in one call.

data -> autoencoder -> latent diffusion -> samples -> evaluation against held-out trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuralcli.config.schemas import stage_config
from neuralcli.data.sources.lorenz import split_sizes
from neuralcli.pipelines.evaluate import EvaluationResult, evaluate_samples
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter
from neuralcli.pipelines.runs import run_dir_for
from neuralcli.pipelines.sample import SampleResult, sample_spikes
from neuralcli.pipelines.train_ae import TrainRunResult, train_autoencoder
from neuralcli.pipelines.train_diffusion import train_diffusion
from neuralcli.runtime.checkpoint import STATE_FILE
from neuralcli.runtime.device import Runtime


@dataclass
class DemoResult:
    ae: TrainRunResult
    diffusion: TrainRunResult
    samples: SampleResult
    evaluation: EvaluationResult


def run_demo(
    *,
    home: Path,
    runtime: Runtime,
    preset: str = "lorenz-quick",
    sampler: str = "ddim",
    steps: int | None = 50,
    n_samples: int | None = None,
    overrides: list[str] | None = None,
    reporter: ProgressReporter | None = None,
) -> DemoResult:
    """Train both stages of `preset`, sample as many trials as the test split holds (or
    `n_samples`) and evaluate them against the test split.

    A second call continues or reuses the runs already in <home>/runs (their checkpoints).
    `overrides` (`section.key=value`) go to both stages, e.g. `training.max_steps=20`.
    """
    reporter = reporter or SilentReporter()
    ae_config = stage_config(preset, "ae", overrides)
    ae_dir = run_dir_for(home, ae_config.name)
    reporter.message(f"[1/4] autoencoder -> {ae_dir}")
    ae = train_autoencoder(
        ae_config,
        home=home,
        runtime=runtime,
        resume=(ae_dir / STATE_FILE).is_file(),
        reporter=reporter,
    )

    diffusion_config = stage_config(preset, "diffusion", overrides, assign={"ae": str(ae.run_dir)})
    diffusion_dir = run_dir_for(home, diffusion_config.name)
    reporter.message(f"[2/4] latent diffusion -> {diffusion_dir}")
    diffusion = train_diffusion(
        diffusion_config,
        home=home,
        runtime=runtime,
        resume=(diffusion_dir / STATE_FILE).is_file(),
        reporter=reporter,
    )

    lorenz = ae_config.data.lorenz
    n = n_samples or split_sizes(lorenz.n_trials, lorenz.split_fractions)[2]
    reporter.message(f"[3/4] sampling {n} trials ({sampler})")
    samples = sample_spikes(
        diffusion.run_dir, runtime=runtime, n=n, sampler=sampler, steps=steps, reporter=reporter
    )
    reporter.message("[4/4] evaluating against held-out test trials")
    evaluation = evaluate_samples(
        samples.npz_path, "lorenz:test", home=home, seed=runtime.seed, reporter=reporter
    )
    return DemoResult(ae=ae, diffusion=diffusion, samples=samples, evaluation=evaluation)
