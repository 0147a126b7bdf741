"""`neuralcli train diffusion`: fit the latent denoiser on a frozen AE's latents (LDNS §6-§8)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from neuralcli.config.build import build_config, dump_yaml
from neuralcli.config.schemas import DataConfig, DiffusionRunConfig
from neuralcli.data.datasets import LatentTensorSource
from neuralcli.errors import ConfigError
from neuralcli.models.autoencoder import SpikeAutoencoder
from neuralcli.models.denoiser import Denoiser
from neuralcli.pipelines.data import load_spike_splits
from neuralcli.pipelines.latents import LatentStats, encode_spikes
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter, TrainingProgress
from neuralcli.pipelines.runs import resolve_run_dir
from neuralcli.pipelines.train_ae import TrainRunResult, prepare_run_dir
from neuralcli.runtime.checkpoint import META_FILE, WEIGHTS_FILE, read_model_meta
from neuralcli.runtime.device import Runtime
from neuralcli.runtime.seed import seed_everything
from neuralcli.training.diffusion_objective import DiffusionObjective
from neuralcli.training.loop import train

AE_SUBDIR = "autoencoder"


def data_config_from_meta(meta: dict) -> DataConfig:
    """Rebuild the DataConfig an AE was trained on from its model.json."""
    data = meta.get("data") or {}
    return build_config(DataConfig, {"dataset": data["dataset"], data["dataset"]: data["settings"]})


def train_diffusion(
    config: DiffusionRunConfig,
    *,
    home: Path,
    runtime: Runtime,
    resume: bool = False,
    reporter: ProgressReporter | None = None,
) -> TrainRunResult:
    """Encode the AE's training data, standardise the latents and train the denoiser.

    The run directory gets a copy of the AE (runs/<name>/autoencoder/) so that a diffusion
    run alone is enough to sample spikes.
    """
    reporter = reporter or SilentReporter()
    if not config.ae:
        raise ConfigError(
            "no autoencoder given: pass --ae runs/<ae-run> (or set `ae` in the preset)"
        )
    ae_dir = resolve_run_dir(config.ae, home)
    ae_meta = read_model_meta(ae_dir, expected_kind=SpikeAutoencoder.kind)
    autoencoder = SpikeAutoencoder.from_pretrained(ae_dir, device=runtime.device)
    latent_channels = autoencoder.config.latent_channels
    if config.model.latent_channels != latent_channels:
        raise ConfigError(
            f"model.latent_channels is {config.model.latent_channels} but the AE in {ae_dir} has "
            f"{latent_channels} latents; set --set model.latent_channels={latent_channels}"
        )

    splits = load_spike_splits(home, data_config_from_meta(ae_meta), reporter=reporter)
    encode = dict(device=runtime.device, batch_size=config.latents.encode_batch_size)
    train_latents = encode_spikes(
        autoencoder, splits.train, reporter=reporter, task="encode train", **encode
    )
    val_latents = encode_spikes(
        autoencoder, splits.val, reporter=reporter, task="encode val", **encode
    )
    stats = LatentStats.fit(train_latents, config.latents.clip)
    del autoencoder

    run_dir = prepare_run_dir(
        home, config.name, dump_yaml(config), resume=resume, is_main=runtime.dist.is_main
    )
    if runtime.dist.is_main:
        (run_dir / AE_SUBDIR).mkdir(exist_ok=True)
        for name in (WEIGHTS_FILE, META_FILE):
            shutil.copy2(ae_dir / name, run_dir / AE_SUBDIR / name)

    seed_everything(runtime.seed, deterministic=runtime.deterministic)
    model = Denoiser(config=config.model).to(runtime.device)
    result = train(
        model=model,
        objective=DiffusionObjective(config=config.loss),
        train_data=LatentTensorSource(torch.from_numpy(stats.standardise(train_latents))),
        val_data=LatentTensorSource(torch.from_numpy(stats.standardise(val_latents))),
        config=config.training,
        runtime=runtime,
        run_dir=run_dir,
        model_kind=Denoiser.kind,
        model_config=config.model,
        resume=resume,
        param_groups=model.parameter_groups(config.training.weight_decay),
        extra_meta={
            "latent_stats": stats.to_meta(),
            "diffusion": {
                "num_train_timesteps": config.loss.num_train_timesteps,
                "beta_start": config.loss.beta_start,
                "beta_end": config.loss.beta_end,
            },
            "ae_source": str(ae_dir),
            "train_length": int(splits.train.shape[1]),
            "data": ae_meta.get("data"),
            "bin_seconds": splits.bin_seconds,
        },
        callback=TrainingProgress(reporter, f"train diffusion {config.name}"),
    )
    return TrainRunResult(run_dir=run_dir, train=result)
