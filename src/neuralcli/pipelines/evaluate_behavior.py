"""`neuralcli evaluate behavior`: is the behaviour that samples were conditioned on readable
from their rates? (LDNS §11.3)

A ridge decoder (alpha 1e-6) from AE rates to hand velocity is fit on real training trials,
with the AE that decodes the samples (the generating diffusion run's `autoencoder/`), and is
applied to the samples' rates:

- velocity-conditioned samples: R² of the decoded velocity against `condition_velocity`;
- angle-conditioned samples: the reach angle of the decoded velocity at the dataset's angle
  bin against `condition_angle`, and the fraction within ±30°.

The decoder's R² on the real val and test trials is the ceiling those scores can reach. The
bars (R² ≥ 0.7, ≥ 80 % of angles within 30°) are ours (evaluation/behavior.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuralcli.errors import DataError
from neuralcli.evaluation.behavior import (
    ANGLE_BIN,
    ANGLE_FRACTION_BAR,
    VELOCITY_R2_BAR,
    BehaviorReport,
    RidgeDecoder,
    behavior_report,
    decode_velocity,
    fit_velocity_decoder,
    reach_angle,
    velocity_r2,
)
from neuralcli.evaluation.condition_plots import (
    plot_angle_errors,
    plot_condition_rates,
    plot_decoded_velocity,
)
from neuralcli.models.autoencoder import SpikeAutoencoder
from neuralcli.pipelines.data import LoadedSpikes, load_spikes
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter
from neuralcli.pipelines.runs import resolve_run_dir
from neuralcli.pipelines.train_diffusion import AE_SUBDIR
from neuralcli.runtime.checkpoint import write_json

CONDITION_KINDS = ("velocity", "angle")
CEILING_SPLITS = ("val", "test")


@dataclass
class BehaviorEvaluation:
    """Behaviour read out of one set of conditioned samples.

    kinds: the conditions scored ("velocity" and/or "angle"); ceilings: the decoder's R² on
    each held-out real split that has trials and velocity (keyed val / test); train_r2: its
    R² on the trials it was fit on; report: the scores and their bars.
    """

    samples: str
    real: str
    autoencoder: Path
    kinds: list[str]
    n_samples: int
    n_real: int
    angle_bin: int
    train_r2: float
    ceilings: dict[str, float]
    report: BehaviorReport
    decoder: RidgeDecoder
    files: list[Path] = field(default_factory=list)
    report_path: Path | None = None

    def bars(self) -> dict[str, dict[str, Any]]:
        """Each scored bar: its value, the threshold and whether it was met."""
        report = self.report
        bars: dict[str, dict[str, Any]] = {}
        if report.velocity_r2 is not None:
            bars["velocity_r2"] = {
                "value": report.velocity_r2,
                "bar": VELOCITY_R2_BAR,
                "met": bool(report.velocity_ok),
            }
        if report.angle_within_fraction is not None:
            bars["angle_within_fraction"] = {
                "value": report.angle_within_fraction,
                "bar": ANGLE_FRACTION_BAR,
                "met": bool(report.angle_ok),
            }
        return bars

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "real": self.real,
            "autoencoder": str(self.autoencoder),
            "kinds": self.kinds,
            "n_samples": self.n_samples,
            "n_real": self.n_real,
            "angle_bin": self.angle_bin,
            "decoder_alpha": self.decoder.alpha,
            "decoder_train_r2": self.train_r2,
            "decoder_ceiling_r2": self.ceilings,
            **self.report.to_dict(),
            "bars": self.bars(),
            "files": [str(path) for path in self.files],
            "report": str(self.report_path) if self.report_path else None,
        }


@torch.no_grad()
def autoencoder_rates(
    autoencoder: SpikeAutoencoder,
    spikes: np.ndarray,
    *,
    device: torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """The AE's rates on unmasked input, in fp32: (n, T, N) counts -> (n, T, N) float32."""
    autoencoder.eval()
    out = np.empty(spikes.shape, np.float32)
    for start in range(0, spikes.shape[0], batch_size):
        batch = torch.from_numpy(spikes[start : start + batch_size]).to(device, torch.float32)
        out[start : start + batch.shape[0]] = autoencoder(batch).rates.float().cpu().numpy()
    return out


def _samples_rates(samples: LoadedSpikes) -> np.ndarray:
    path = samples.origin
    if path is None or path.suffix != ".npz":
        raise DataError(
            f"{samples.label} holds no rates; behaviour is decoded from the samples' rates: "
            "pass the .npz written by `neuralcli sample`"
        )
    with np.load(path, allow_pickle=False) as archive:
        if "rates" not in archive.files:
            raise DataError(
                f"{path} holds no `rates` array; behaviour is decoded from the samples' rates: "
                "pass the .npz written by `neuralcli sample`"
            )
        rates = np.asarray(archive["rates"], dtype=np.float32)
    if rates.shape != samples.spikes.shape:
        raise DataError(
            f"{path}: rates {rates.shape} and spikes {samples.spikes.shape} differ in shape; "
            "regenerate the file with `neuralcli sample`"
        )
    return rates


def _condition_kinds(samples: LoadedSpikes) -> list[str]:
    """The conditions to score: the one metadata["condition"]["kind"] names, else every
    condition array the file carries."""
    present = {
        "velocity": samples.conditions.velocity is not None,
        "angle": samples.conditions.angle is not None,
    }
    kind = (samples.metadata.get("condition") or {}).get("kind")
    if kind in CONDITION_KINDS and present[kind]:
        return [kind]
    kinds = [name for name in CONDITION_KINDS if present[name]]
    if not kinds:
        raise DataError(
            f"{samples.label} carries no angle or velocity condition; evaluate behaviour of "
            "samples drawn with `neuralcli sample --condition ...` from an angle- or "
            "velocity-conditioned model"
        )
    return kinds


def _autoencoder_dir(samples: LoadedSpikes, home: Path) -> Path:
    run = samples.metadata.get("run")
    if not run:
        raise DataError(
            f"{samples.label} records no generating run (metadata 'run'); pass samples "
            "written by `neuralcli sample`"
        )
    return resolve_run_dir(run, home) / AE_SUBDIR


def _default_real(samples: LoadedSpikes) -> str:
    data = samples.metadata.get("data") or {}
    if not data.get("dataset"):
        raise DataError(f"{samples.label} records no training dataset; pass --real dataset:train")
    return f"{data['dataset']}:train"


def _angle_bin(samples: LoadedSpikes) -> int:
    settings = (samples.metadata.get("data") or {}).get("settings") or {}
    return int(settings.get("angle_bin", ANGLE_BIN))


def _real_velocity(real: LoadedSpikes) -> np.ndarray:
    velocity = real.conditions.velocity
    if velocity is None:
        raise DataError(
            f"{real.label} has no hand velocity to fit the decoder on; pass a split of a "
            "reaching dataset (mc_maze or synthetic-maze) with --real"
        )
    return velocity


def _ceiling_splits(real_ref: str) -> list[str]:
    """Held-out splits of the same dataset as `real_ref` (dataset:split), else none."""
    dataset, _, split = real_ref.partition(":")
    if not split or Path(real_ref).exists():
        return []
    return [f"{dataset}:{name}" for name in CEILING_SPLITS if name != split]


def evaluate_behavior(
    samples: str | Path,
    *,
    home: Path,
    device: torch.device,
    real: str | None = None,
    out_dir: Path | None = None,
    batch_size: int = 256,
    reporter: ProgressReporter | None = None,
) -> BehaviorEvaluation:
    """Score conditioned `samples` (an .npz from `neuralcli sample`, or its run directory)
    with a ridge velocity decoder fit on `real` (default: the samples' training dataset,
    split train). out_dir: write behavior.json and the figures there."""
    reporter = reporter or SilentReporter()
    model = load_spikes(samples, home)
    kinds = _condition_kinds(model)
    sampled_rates = _samples_rates(model)
    ae_dir = _autoencoder_dir(model, home)
    prefer = model.metadata.get("data")
    real_ref = real or _default_real(model)
    data = load_spikes(real_ref, home, prefer_data=prefer)
    velocity = _real_velocity(data)
    if data.spikes.shape[-1] != model.spikes.shape[-1]:
        raise DataError(
            f"{model.label} has {model.spikes.shape[-1]} neurons but {data.label} has "
            f"{data.spikes.shape[-1]}; pass the dataset the samples' model was trained on"
        )
    angle_bin = _angle_bin(model)
    if "angle" in kinds and not 0 <= angle_bin < model.spikes.shape[1]:
        raise DataError(
            f"the angle bin {angle_bin} lies outside the samples' {model.spikes.shape[1]} bins; "
            "draw samples of the training length"
        )

    autoencoder = SpikeAutoencoder.from_pretrained(ae_dir, device=device)
    if autoencoder.config.n_neurons != data.spikes.shape[-1]:
        raise DataError(
            f"the AE in {ae_dir} models {autoencoder.config.n_neurons} neurons but {data.label} "
            f"has {data.spikes.shape[-1]}; pass the dataset it was trained on"
        )
    reporter.message(f"fitting the velocity decoder on AE rates of {data.spikes.shape[0]} trials")
    real_rates = autoencoder_rates(autoencoder, data.spikes, device=device, batch_size=batch_size)
    decoder = fit_velocity_decoder(real_rates, velocity)
    train_r2 = velocity_r2(decode_velocity(decoder, real_rates), velocity)

    ceilings: dict[str, float] = {}
    heldout: tuple[np.ndarray, np.ndarray] | None = None
    for ref in _ceiling_splits(real_ref):
        split = load_spikes(ref, home, prefer_data=prefer)
        if split.spikes.shape[0] == 0 or split.conditions.velocity is None:
            continue
        rates = autoencoder_rates(autoencoder, split.spikes, device=device, batch_size=batch_size)
        ceilings[ref.partition(":")[2]] = velocity_r2(
            decode_velocity(decoder, rates), split.conditions.velocity
        )
        heldout = (rates, split.conditions.velocity)  # the last one: test when it exists
    del autoencoder

    conditions = model.conditions
    report = behavior_report(
        decoder,
        velocity_rates=sampled_rates if "velocity" in kinds else None,
        velocity_condition=conditions.velocity if "velocity" in kinds else None,
        angle_rates=sampled_rates if "angle" in kinds else None,
        angle_condition=conditions.angle if "angle" in kinds else None,
        heldout_rates=None if heldout is None else heldout[0],
        heldout_velocity=None if heldout is None else heldout[1],
        angle_bin=angle_bin,
    )
    evaluation = BehaviorEvaluation(
        samples=model.label,
        real=data.label,
        autoencoder=ae_dir,
        kinds=kinds,
        n_samples=int(model.spikes.shape[0]),
        n_real=int(data.spikes.shape[0]),
        angle_bin=angle_bin,
        train_r2=train_r2,
        ceilings=ceilings,
        report=report,
        decoder=decoder,
    )
    if out_dir is not None:
        out_dir = Path(out_dir)
        bin_seconds = model.bin_seconds or data.bin_seconds or 1.0
        decoded = decode_velocity(decoder, sampled_rates)  # (n, T, 2)
        if "velocity" in kinds:
            evaluation.files.append(
                plot_decoded_velocity(
                    conditions.velocity,
                    decoded,
                    out_dir / "decoded_velocity.png",
                    bin_seconds=bin_seconds,
                )
            )
        if "angle" in kinds:
            evaluation.files.append(
                plot_angle_errors(
                    reach_angle(decoded, angle_bin),
                    conditions.angle,
                    out_dir / "angle_errors.png",
                    tolerance_degrees=report.tolerance_degrees,
                )
            )
            real_angles = data.conditions.angle
            if real_angles is None:
                real_angles = reach_angle(velocity, angle_bin)
            evaluation.files.append(
                plot_condition_rates(
                    real_rates,
                    real_angles,
                    sampled_rates,
                    conditions.angle,
                    out_dir / "condition_rates.png",
                    bin_seconds=bin_seconds,
                )
            )
        evaluation.report_path = out_dir / "behavior.json"
        evaluation.files.insert(0, evaluation.report_path)
        write_json(evaluation.report_path, evaluation.to_dict())
    return evaluation
