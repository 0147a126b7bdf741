"""What `neuralcli sample` conditions on (LDNS §9), resolved against the trained model.

- angle: one reach angle per sample, fixed (`--angle`), uniform θ ~ U(−π, π), or the angles
  of a dataset split's trials (`--from`).
- velocity: hand-velocity traces (n, T, 2) in m/s from a split (`--from`) or a .npy file;
  the traces set n and the length.
- length (human): lengths of a split's trials (`--from`), one `--length`, or
  linspace(100, window, n); each is a window centred in the model's `mask_length` bins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuralcli.errors import ConfigError, DataError
from neuralcli.models.autoencoder import SpikeAutoencoder
from neuralcli.models.denoiser import CONDITIONS, Denoiser
from neuralcli.pipelines.data import TrialConditions, load_spikes
from neuralcli.pipelines.latents import LatentStats
from neuralcli.pipelines.train_diffusion import AE_SUBDIR
from neuralcli.runtime.checkpoint import read_model_meta

DEFAULT_N = 1000
# LDNS §9 (human): default lengths run from this many bins up to the model's window.
SHORTEST_DEFAULT_LENGTH = 100
VELOCITY_SHAPE = "(n, time, 2)"


@dataclass(frozen=True)
class ConditionRequest:
    """What the user asked to condition on; every field optional.

    kind: "none" | "angle" | "velocity" | "length", None = the model's own condition.
    angle_degrees: one reach angle for every sample (angle models), within [−360, 360].
    from_split: "dataset:split" whose trials give the condition (angles, velocities or
    lengths of held-out trials).
    velocity_file: a .npy of velocity traces (n, T, 2) in m/s (velocity models).
    """

    kind: str | None = None
    angle_degrees: float | None = None
    from_split: str | None = None
    velocity_file: Path | None = None


@dataclass
class SampleCondition:
    """The condition every sample is drawn with, resolved against the model (LDNS §9)."""

    kind: str
    source: str | None
    n: int
    angle: np.ndarray | None = None  # (n,) float32 radians
    velocity: np.ndarray | None = None  # (n, T, 2) float32 m/s; sets T
    lengths: np.ndarray | None = None  # (n,) int64 real bins per sample (length models)
    window: int | None = None  # length models: bins denoised per sample (mask_length)

    def describe(self) -> dict:
        return {"kind": self.kind, "source": self.source}

    def centred_mask(self) -> np.ndarray | None:
        """(n, window) uint8 masks of each length centred in the window (LDNS §6, §9)."""
        if self.lengths is None or self.window is None:
            return None
        mask = np.zeros((self.n, self.window), dtype=np.uint8)
        for row, (start, count) in enumerate(zip(self.window_starts(), self.lengths, strict=True)):
            mask[row, start : start + count] = 1
        return mask

    def window_starts(self) -> np.ndarray:
        """(n,) first real bin of each centred window: (window − L) // 2, as centre_valid."""
        if self.lengths is None or self.window is None:
            raise ValueError("only a length condition has windows")
        return (self.window - self.lengths) // 2


@dataclass(frozen=True)
class DiffusionBundle:
    """A trained diffusion run: denoiser, its AE, latent statistics and training facts."""

    run_dir: Path
    denoiser: Denoiser
    autoencoder: SpikeAutoencoder
    stats: LatentStats
    meta: dict

    @classmethod
    def load(cls, run_dir: Path, device: torch.device) -> DiffusionBundle:
        meta = read_model_meta(run_dir, expected_kind=Denoiser.kind)
        return cls(
            run_dir=run_dir,
            denoiser=Denoiser.from_pretrained(run_dir, device=device),
            autoencoder=SpikeAutoencoder.from_pretrained(run_dir / AE_SUBDIR, device=device),
            stats=LatentStats.from_meta(meta["latent_stats"]),
            meta=meta,
        )

    @property
    def condition(self) -> str:
        return self.denoiser.config.condition

    @property
    def mask_length(self) -> int:
        """Bins of the centred window a length-conditioned model was trained on."""
        return int(self.meta.get("mask_length") or self.meta["train_length"])


def resolve_condition(
    request: ConditionRequest,
    *,
    bundle: DiffusionBundle,
    n: int | None,
    length: int | None,
    home: Path | None,
    seed: int,
) -> SampleCondition:
    """Check `request` against the model's condition and build the per-sample condition.

    Raises ConfigError for options that do not fit the model and DataError for a split or
    file that cannot give the condition. Uniform angles come from a numpy generator seeded
    with (seed, 1), apart from the torch generator of z_T, so the latents of a given seed do
    not depend on how the angles were chosen.
    """
    model = bundle.condition
    kind = request.kind if request.kind is not None else model
    if kind not in CONDITIONS:
        raise ConfigError(f"--condition {kind!r}: use one of {', '.join(CONDITIONS)}")
    if kind != model:
        raise ConfigError(
            f"--condition {kind}: {bundle.run_dir.name} was trained with condition {model!r}; "
            f"use --condition {model} (or leave --condition out)"
        )
    _refuse_options(request, kind)
    if kind == "angle":
        return _angle_condition(request, bundle=bundle, n=n, home=home, seed=seed)
    if kind == "velocity":
        return _velocity_condition(request, bundle=bundle, n=n, length=length, home=home)
    if kind == "length":
        return _length_condition(request, bundle=bundle, n=n, length=length, home=home)
    return SampleCondition(kind="none", source=None, n=DEFAULT_N if n is None else n)


def _refuse_options(request: ConditionRequest, kind: str) -> None:
    """ConfigError for a condition option the model's condition has no use for."""
    unused = []
    if request.angle_degrees is not None and kind != "angle":
        unused.append("--angle")
    if request.velocity_file is not None and kind != "velocity":
        unused.append("--velocity")
    if request.from_split is not None and kind == "none":
        unused.append("--from")
    if unused:
        raise ConfigError(
            f"{', '.join(unused)}: the model is conditioned on {kind!r}, which does not use "
            f"{'it' if len(unused) == 1 else 'them'}; leave {' and '.join(unused)} out"
        )


def _angle_condition(
    request: ConditionRequest,
    *,
    bundle: DiffusionBundle,
    n: int | None,
    home: Path | None,
    seed: int,
) -> SampleCondition:
    if request.angle_degrees is not None and request.from_split is not None:
        raise ConfigError("--angle and --from both give the angles; pass only one")
    if request.angle_degrees is not None:
        degrees = float(request.angle_degrees)
        if not (math.isfinite(degrees) and -360.0 <= degrees <= 360.0):
            raise ConfigError(f"--angle {degrees:g}: give the reach angle in degrees, -360..360")
        n = DEFAULT_N if n is None else n
        radians = math.atan2(math.sin(math.radians(degrees)), math.cos(math.radians(degrees)))
        angle = np.full(n, radians, dtype=np.float32)
        return SampleCondition("angle", f"fixed {degrees:g} deg", n, angle=angle)
    if request.from_split is not None:
        angles = _split_conditions(request.from_split, bundle, home).angle
        if angles is None:
            raise DataError(
                f"--from {request.from_split}: that split holds no reach angles; "
                "name a split of a reaching dataset (e.g. mc_maze:test)"
            )
        angle = _first(angles, n, request.from_split, "trials")
        return SampleCondition("angle", request.from_split, len(angle), angle=angle)
    n = DEFAULT_N if n is None else n
    rng = np.random.default_rng([seed, 1])
    angle = rng.uniform(-np.pi, np.pi, size=n).astype(np.float32)  # LDNS §9: θ ~ U(−π, π)
    return SampleCondition("angle", "uniform", n, angle=angle)


def _velocity_condition(
    request: ConditionRequest,
    *,
    bundle: DiffusionBundle,
    n: int | None,
    length: int | None,
    home: Path | None,
) -> SampleCondition:
    if (request.from_split is None) == (request.velocity_file is None):
        raise ConfigError(
            f"{bundle.run_dir.name} is conditioned on hand velocity: pass exactly one of "
            f"--from dataset:split (e.g. mc_maze:test) or --velocity traces.npy {VELOCITY_SHAPE}"
        )
    if request.velocity_file is not None:
        source = str(request.velocity_file)
        traces = read_velocity_file(request.velocity_file)
        what = "traces"
    else:
        source = str(request.from_split)
        traces = _split_conditions(source, bundle, home).velocity
        if traces is None:
            raise DataError(
                f"--from {source}: that split holds no hand velocity; name a split of a "
                "reaching dataset (e.g. mc_maze:test) or pass --velocity traces.npy"
            )
        what = "trials"
    velocity = _first(np.asarray(traces, dtype=np.float32), n, source, what)
    if length is not None and length != velocity.shape[1]:
        raise ConfigError(
            f"--length {length}: the velocity from {source} sets the length to "
            f"{velocity.shape[1]} bins; leave --length out"
        )
    return SampleCondition("velocity", source, len(velocity), velocity=velocity)


def _length_condition(
    request: ConditionRequest,
    *,
    bundle: DiffusionBundle,
    n: int | None,
    length: int | None,
    home: Path | None,
) -> SampleCondition:
    window = bundle.mask_length
    if length is not None and request.from_split is not None:
        raise ConfigError("--length and --from both give the lengths; pass only one")
    if length is not None:
        if length > window:
            raise ConfigError(
                f"--length {length}: {bundle.run_dir.name} was trained on windows of {window} "
                f"bins; use --length 1..{window}"
            )
        n = DEFAULT_N if n is None else n
        lengths = np.full(n, length, dtype=np.int64)
        return SampleCondition("length", f"lengths {length}", n, lengths=lengths, window=window)
    if request.from_split is not None:
        mask = _split_conditions(request.from_split, bundle, home).mask
        if mask is None:
            raise DataError(
                f"--from {request.from_split}: that split has no trial lengths (mask); "
                "name a split of a variable-length dataset (e.g. human:test) or pass --length"
            )
        lengths = _first(
            np.asarray(mask).sum(axis=1).astype(np.int64), n, request.from_split, "trials"
        )
        if lengths.max() > window or lengths.min() < 1:
            raise DataError(
                f"--from {request.from_split}: trial lengths {lengths.min()}..{lengths.max()} "
                f"do not fit the model's window of 1..{window} bins; pass --length"
            )
        source = f"lengths of {request.from_split}"
        return SampleCondition("length", source, len(lengths), lengths=lengths, window=window)
    n = DEFAULT_N if n is None else n
    shortest = min(SHORTEST_DEFAULT_LENGTH, window)
    # LDNS §9: lengths linspace(100, 512) over the samples.
    lengths = np.clip(np.rint(np.linspace(shortest, window, n)), 1, window).astype(np.int64)
    source = f"lengths linspace({shortest}, {window}, {n})"
    return SampleCondition("length", source, n, lengths=lengths, window=window)


def _split_conditions(ref: str, bundle: DiffusionBundle, home: Path | None) -> TrialConditions:
    """The TrialConditions of `dataset:split`, from the variant the model was trained on."""
    if home is None:
        raise ConfigError(f"--from {ref}: no home directory given to find the dataset in")
    if ":" not in ref:
        raise ConfigError(f"--from {ref}: name a dataset split, e.g. mc_maze:test")
    return load_spikes(ref, home, prefer_data=bundle.meta.get("data")).conditions


def _first(values: np.ndarray, n: int | None, source: str, what: str) -> np.ndarray:
    """The first n rows of the conditions from `source` (all of them when n is None)."""
    if len(values) == 0:
        raise DataError(f"{source}: holds no {what}; pass a source with at least one")
    if n is None:
        return values
    if n > len(values):
        raise ConfigError(
            f"--n {n}: {source} gives only {len(values)} {what}; pass --n {len(values)} or fewer"
        )
    return values[:n]


def read_velocity_file(path: Path) -> np.ndarray:
    """Velocity traces from a .npy file: (n, T, 2) finite floats in m/s -> float32.

    Any problem is a DataError naming the file and the expected shape.
    """
    path = Path(path)
    expected = f"it must hold a float array {VELOCITY_SHAPE} of hand velocities in m/s"
    if not path.is_file():
        raise DataError(f"--velocity {path}: no such file; {expected} (saved with np.save)")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(
            f"--velocity {path}: not a readable .npy file ({type(err).__name__}); {expected}"
        ) from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise DataError(f"--velocity {path}: is an .npz archive; {expected}, saved with np.save")
    if array.ndim != 3 or array.shape[-1] != 2 or 0 in array.shape:
        raise DataError(f"--velocity {path}: has shape {array.shape}; {expected}")
    if not np.issubdtype(array.dtype, np.floating):
        raise DataError(f"--velocity {path}: has dtype {array.dtype}; {expected}")
    if not np.isfinite(array).all():
        raise DataError(f"--velocity {path}: has NaN or infinite values; {expected}")
    return array.astype(np.float32)
