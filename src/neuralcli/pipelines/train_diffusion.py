"""`neuralcli train diffusion`: fit the latent denoiser on a frozen AE's latents (LDNS §6-§8)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from neuralcli.config.build import build_config, dump_yaml
from neuralcli.config.schemas import DataConfig, DiffusionRunConfig
from neuralcli.data.datasets import ConditionedLatentSource, LatentTensorSource
from neuralcli.errors import ConfigError
from neuralcli.models.autoencoder import SpikeAutoencoder
from neuralcli.models.denoiser import Denoiser
from neuralcli.pipelines.data import SpikeSplits, load_spike_splits
from neuralcli.pipelines.latents import LatentStats, centre_valid, encode_spikes
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
    section = DataConfig.section_of(data["dataset"])
    return build_config(DataConfig, {"dataset": data["dataset"], section: data["settings"]})


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
    condition = config.model.condition
    _check_condition(condition, splits)
    encode = dict(device=runtime.device, batch_size=config.latents.encode_batch_size)
    train_latents = encode_spikes(
        autoencoder, splits.train, reporter=reporter, task="encode train", **encode
    )
    val_latents = encode_spikes(
        autoencoder, splits.val, reporter=reporter, task="encode val", **encode
    )
    del autoencoder
    train_mask = splits.conditions_of("train").mask
    if train_mask is None:
        stats = LatentStats.fit(train_latents, config.latents.clip)
    else:
        stats = LatentStats.fit_masked(train_latents, train_mask, config.latents.clip)
    train_data = latent_source(stats.standardise(train_latents), splits, "train", condition)
    val_data = latent_source(stats.standardise(val_latents), splits, "val", condition)
    condition_meta: dict = {"condition": condition}
    if condition == "length":
        condition_meta["mask_length"] = int(splits.train.shape[1])

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
        train_data=train_data,
        val_data=val_data,
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
            **condition_meta,
        },
        callback=TrainingProgress(reporter, f"train diffusion {config.name}"),
    )
    return TrainRunResult(run_dir=run_dir, train=result)


# The trial data each condition needs (LDNS §9).
_NEEDS = {"angle": "angle", "velocity": "velocity", "length": "mask"}


def _check_condition(condition: str, splits: SpikeSplits) -> None:
    """ConfigError when the data lack what `condition` needs, or need a condition it lacks."""
    have = splits.conditions_of("train")
    needed = _NEEDS.get(condition)
    if needed is not None and getattr(have, needed) is None:
        raise ConfigError(
            f"model.condition={condition} needs a {needed} per trial but {splits.dataset} has "
            "none; set --set model.condition=none"
        )
    if have.mask is not None and condition != "length":
        raise ConfigError(
            f"{splits.dataset} has variable-length trials: the denoiser must be conditioned on "
            "their length; set --set model.condition=length (LDNS §9)"
        )


def latent_source(
    latents: np.ndarray, splits: SpikeSplits, split: str, condition: str
) -> LatentTensorSource | ConditionedLatentSource:
    """Standardised latents (n, T, d) of `split` as training batches with their condition.

    length (human, LDNS §6): each trial's real bins are cut out and re-padded centred in T bins
    (replicate padding); the centred mask is both the condition and the loss mask.
    """
    conditions = splits.conditions_of(split)
    if condition == "none":
        return LatentTensorSource(torch.from_numpy(latents))
    if condition == "angle":
        return ConditionedLatentSource(latents, angle=conditions.angle)
    if condition == "velocity":
        return ConditionedLatentSource(latents, velocity=conditions.velocity)
    centred = centre_valid(latents, conditions.mask)
    return ConditionedLatentSource(centred.latents, mask=centred.mask)
