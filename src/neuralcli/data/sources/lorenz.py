"""Synthetic Lorenz spiking data, exactly the LDNS recipe (data-sources §5).

A 3-d Lorenz attractor is integrated from 5000 jittered initial conditions, each trajectory
is z-scored on its own, and 128 Poisson neurons read it out through a fixed random unit-norm
projection and a softplus. Nothing is downloaded; the arrays are a pure function of
`LorenzSettings` (and of numpy/scipy/torch versions: the system is chaotic).

Random streams, all seeded from `settings.seed`:
- initial conditions: legacy numpy `RandomState(seed)`, one (n_trials, 3) standard-normal draw;
- readout C, then the Poisson counts: one `torch.Generator` seeded with `seed`, used in that
  order. This is the stream the reference draws from (its global torch RNG right after
  `manual_seed(seed)`), without touching torch's global RNG;
- train/val/test labels: a second `torch.Generator` seeded with `seed` (see `split_labels`).

Each trajectory is solved on its own with `solve_ivp(method="Radau")` so that step-size control
matches the recipe; trajectories are spread over a process pool because the solver is pure
Python (about 65 ms per 356-sample trajectory on one core). torch is imported inside the
functions that need it so that a worker process starts with numpy and scipy only.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

# scipy.integrate is imported where trajectories are integrated: it costs ~45 MB and ~0.8 s, and
# every command imports this module for `LorenzSettings` while only simulating needs the solver.

if TYPE_CHECKING:
    import torch

SPLIT_NAMES = ("train", "val", "test")

# The dysts Lorenz default initial condition (data-sources §5 step 2).
BASE_INITIAL_CONDITION = (-9.7869288, -15.03852, 20.533978)
# dysts Lorenz metadata: characteristic period and integration step (data-sources §5 step 3).
PERIOD = 1.5008
POINTS_PER_PERIOD = 100
FIRST_STEP = 1.801e-4

# Trials per block of rates and counts: bounds the float temporaries. Blocking leaves torch's
# CPU Poisson draws unchanged (the generator is consumed element by element, in order).
_READOUT_CHUNK = 256

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class LorenzSettings:
    """Every parameter of the Lorenz spiking dataset; defaults are the LDNS ones (§5)."""

    n_trials: int = 5000
    length: int = 256  # time bins kept per trial, after burn-in
    n_neurons: int = 128
    burn_in: int = 100  # samples integrated and dropped before the kept window
    seed: int = 42
    mean_rate: float = 0.3  # the recipe's mean spike count / length; bias = log(mean_rate)
    softplus_beta: float = 2.0
    ic_scale: float = 2.0  # std of the Gaussian jitter added to the base initial condition
    split_fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)  # train, val, test
    sigma: float = 10.0
    rho: float = 28.0
    beta: float = 2.667

    def __post_init__(self) -> None:
        for name, minimum in (("n_trials", 1), ("length", 2), ("n_neurons", 1), ("burn_in", 0)):
            _check_int(name, getattr(self, name), minimum)
        _check_int("seed", self.seed, 0)
        if self.seed >= 2**32:
            raise ValueError(f"seed must be below 2**32 (numpy's limit), got {self.seed}")
        for name in ("mean_rate", "softplus_beta"):
            _check_float(name, getattr(self, name), positive=True)
        _check_float("ic_scale", self.ic_scale, positive=False)
        if self.ic_scale < 0:
            raise ValueError(f"ic_scale must be >= 0, got {self.ic_scale}")
        for name in ("sigma", "rho", "beta"):
            _check_float(name, getattr(self, name), positive=False)
        fractions = self.split_fractions
        if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__len__"):
            raise ValueError(
                f"split_fractions must be 3 numbers (train, val, test), got {fractions!r}"
            )
        if len(fractions) != 3:
            raise ValueError(
                f"split_fractions must be 3 numbers (train, val, test), got {len(fractions)}"
            )
        for value in fractions:
            _check_float("split_fractions", value, positive=False)
            if value < 0:
                raise ValueError(f"split_fractions must be >= 0, got {tuple(fractions)}")
        if abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(f"split_fractions must sum to 1, got {tuple(fractions)}")
        # YAML gives a list and may give 1 for 1.0: normalise so equal settings hash equally.
        object.__setattr__(self, "split_fractions", tuple(float(v) for v in fractions))
        for name in ("mean_rate", "softplus_beta", "ic_scale", "sigma", "rho", "beta"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("n_trials", "length", "n_neurons", "burn_in", "seed"):
            object.__setattr__(self, name, int(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples) suitable for settings.yaml."""
        data = asdict(self)
        data["split_fractions"] = list(self.split_fractions)
        return data

    @property
    def n_samples(self) -> int:
        """Samples integrated per trajectory: burn-in plus kept window."""
        return self.length + self.burn_in


class LorenzData(NamedTuple):
    spikes: np.ndarray  # (n_trials, length, n_neurons) uint8, or int16 if a count exceeds 255
    rates: np.ndarray  # (n_trials, length, n_neurons) float32, Poisson means per bin
    latents: np.ndarray  # (n_trials, length, 3) float32, z-scored per trajectory and dimension
    split: np.ndarray  # (n_trials,) str: "train" | "val" | "test"
    readout: np.ndarray  # (n_neurons, 3) float32, unit-norm rows sorted by the first column
    bias: float  # shared by all neurons, log(mean_rate)


def simulate_lorenz(
    settings: LorenzSettings | None = None,
    *,
    workers: int | None = None,
    on_progress: ProgressFn | None = None,
) -> LorenzData:
    """Simulate the dataset described by `settings` (LDNS recipe, data-sources §5).

    `workers` processes integrate trajectories in parallel (default and cap: the CPUs this
    process may use); the result does not depend on it. With workers > 1 a script must call
    this under `if __name__ == "__main__":` (worker processes are started fresh, not forked).
    `on_progress(done, total)` is called as trajectories finish.
    """
    import torch

    settings = settings or LorenzSettings()
    initial_conditions = draw_initial_conditions(settings)  # (n, 3)
    latents = integrate_trajectories(
        initial_conditions, settings, workers=workers, on_progress=on_progress
    )  # (n, T, 3) float32
    generator = torch.Generator().manual_seed(settings.seed)
    readout = draw_readout(settings.n_neurons, generator)  # (N, 3)
    bias = lorenz_bias(settings.mean_rate, settings.length)
    rates, spikes = _observe(latents, readout, bias, settings.softplus_beta, generator)
    return LorenzData(
        spikes=spikes,
        rates=rates,
        latents=latents,
        split=split_labels(settings.n_trials, settings.split_fractions, seed=settings.seed),
        readout=readout.numpy(),
        bias=bias,
    )


def draw_initial_conditions(settings: LorenzSettings) -> np.ndarray:
    """(n_trials, 3) float64: base IC + ic_scale * N(0, I), one legacy-numpy draw (§5 step 2)."""
    noise = np.random.RandomState(settings.seed).standard_normal((settings.n_trials, 3))
    return np.asarray(BASE_INITIAL_CONDITION) + settings.ic_scale * noise


def sample_times(n_samples: int) -> np.ndarray:
    """(n_samples,) float64: 100 points per Lorenz period, starting at 0 (§5 step 3)."""
    return np.linspace(0.0, PERIOD * n_samples / POINTS_PER_PERIOD, n_samples)


def integrate_trajectories(
    initial_conditions: np.ndarray,
    settings: LorenzSettings,
    *,
    workers: int | None = None,
    on_progress: ProgressFn | None = None,
) -> np.ndarray:
    """Integrate each initial condition, drop burn-in, z-score: (n, length, 3) float32."""
    total = len(initial_conditions)
    available = _available_cpus()
    workers = max(1, min(available, workers or available))
    chunk = max(1, min(32, math.ceil(total / (4 * workers))))
    starts = list(range(0, total, chunk))
    params = (settings.sigma, settings.rho, settings.beta, settings.n_samples, settings.burn_in)
    latents = np.empty((total, settings.length, 3), dtype=np.float32)
    done = 0
    if workers == 1 or len(starts) == 1:
        for start in starts:
            latents[start : start + chunk] = _integrate_chunk(
                initial_conditions[start : start + chunk], params
            )
            done += len(initial_conditions[start : start + chunk])
            if on_progress is not None:
                on_progress(done, total)
        return latents
    # forkserver/spawn rather than fork: the parent may hold torch/OpenMP threads.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    try:
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {
                pool.submit(_integrate_chunk, initial_conditions[s : s + chunk], params): s
                for s in starts
            }
            for future in concurrent.futures.as_completed(futures):
                start = futures[future]
                block = future.result()
                latents[start : start + len(block)] = block
                done += len(block)
                if on_progress is not None:
                    on_progress(done, total)
    except BrokenProcessPool as err:
        raise RuntimeError(
            "the Lorenz worker processes failed to start; a script that simulates with "
            "workers > 1 must do so under `if __name__ == '__main__':` (or pass workers=1)"
        ) from err
    return latents


def _integrate_chunk(
    initial_conditions: np.ndarray, params: tuple[float, float, float, int, int]
) -> np.ndarray:
    """(k, 3) ICs -> (k, length, 3) float32 z-scored latents. Runs in worker processes."""
    from scipy.integrate import solve_ivp

    sigma, rho, beta, n_samples, burn_in = params
    times = sample_times(n_samples)

    def lorenz(_t: float, state: np.ndarray) -> np.ndarray:
        x, y, z = state
        return np.array([sigma * (y - x), x * (rho - z) - y, x * y - beta * z])

    out = np.empty((len(initial_conditions), n_samples - burn_in, 3), dtype=np.float32)
    for i, initial_condition in enumerate(initial_conditions):
        # Default tolerances (rtol 1e-3, atol 1e-6) as in the recipe (§5 step 3).
        solution = solve_ivp(
            lorenz,
            (times[0], times[-1]),
            initial_condition,
            method="Radau",
            t_eval=times,
            first_step=FIRST_STEP,
        )
        if not solution.success:
            raise RuntimeError(f"Lorenz integration failed: {solution.message}")
        trajectory = solution.y.T[burn_in:]  # (length, 3) float64
        # z-score over this trajectory's own kept points, population std (§5 step 4).
        trajectory = (trajectory - trajectory.mean(axis=0)) / trajectory.std(axis=0)
        out[i] = trajectory
    return out


def draw_readout(n_neurons: int, generator: torch.Generator) -> torch.Tensor:
    """(n_neurons, 3) float32: Gaussian rows, unit L2 norm, sorted by first column (§5 step 5)."""
    import torch

    readout = torch.randn(n_neurons, 3, generator=generator)  # (N, 3)
    readout = readout / readout.norm(dim=1, keepdim=True)
    return readout[readout[:, 0].argsort()]


def lorenz_bias(mean_rate: float, length: int) -> float:
    """log(mean_rate * length / length), in float32 like the recipe's mean spike count (§5)."""
    import torch

    mean_count = torch.tensor(mean_rate * length, dtype=torch.float32)
    return float(torch.log(mean_count / length))


def lorenz_rates(
    latents: np.ndarray | torch.Tensor, readout: np.ndarray | torch.Tensor, bias: float, beta: float
) -> torch.Tensor:
    """Poisson means softplus_beta(C z + b) (§5 step 6): (n, T, 3) -> (n, T, N) float32.

    Also recomputes the rates of a stored dataset, which keeps only latents, readout and bias.
    """
    import torch

    latents = torch.as_tensor(latents, dtype=torch.float32)  # (n, T, 3)
    readout = torch.as_tensor(readout, dtype=torch.float32)  # (N, 3)
    log_rates = latents @ readout.T + bias  # (n, T, N)
    return torch.nn.functional.softplus(log_rates, beta=beta)


def _observe(
    latents: np.ndarray,
    readout: torch.Tensor,
    bias: float,
    beta: float,
    generator: torch.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Rates (n, T, N) float32 and Poisson counts (n, T, N), uint8 when every count fits."""
    import torch

    n_trials, length, _ = latents.shape
    shape = (n_trials, length, readout.shape[0])
    rates = np.empty(shape, dtype=np.float32)
    counts = np.empty(shape, dtype=np.int16)
    largest = 0.0
    for start in range(0, n_trials, _READOUT_CHUNK):
        stop = min(start + _READOUT_CHUNK, n_trials)
        block = lorenz_rates(latents[start:stop], readout, bias, beta)  # (k, T, N)
        drawn = torch.poisson(block, generator=generator)  # (k, T, N) float32
        largest = max(largest, float(drawn.max()))
        if largest > np.iinfo(np.int16).max:
            raise ValueError(
                f"a Poisson count of {largest:.0f} does not fit int16; lower mean_rate"
            )
        rates[start:stop] = block.numpy()
        counts[start:stop] = drawn.numpy()
    if largest <= np.iinfo(np.uint8).max:
        return rates, counts.astype(np.uint8)
    return rates, counts


def split_sizes(n_trials: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """(train, val, test) counts: int(f * n) for train and val, the rest to test (§5 step 7)."""
    n_train = int(fractions[0] * n_trials)
    n_val = int(fractions[1] * n_trials)
    return n_train, n_val, n_trials - n_train - n_val


def split_labels(
    n_trials: int, fractions: tuple[float, float, float] = (0.7, 0.1, 0.2), *, seed: int = 42
) -> np.ndarray:
    """(n_trials,) labels "train"/"val"/"test", as `torch.utils.data.random_split` assigns them.

    A permutation from `torch.Generator().manual_seed(seed)`; its first n_train entries are the
    training trials, the next n_val validation, the rest test.
    """
    import torch

    sizes = split_sizes(n_trials, fractions)
    order = torch.randperm(n_trials, generator=torch.Generator().manual_seed(seed)).numpy()
    labels = np.empty(n_trials, dtype="<U5")
    offset = 0
    for name, size in zip(SPLIT_NAMES, sizes, strict=True):
        labels[order[offset : offset + size]] = name
        offset += size
    return labels


def _available_cpus() -> int:
    # The CPUs this process may run on (a container's limit), not the machine's count.
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _check_float(name: str, value: Any, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
