"""Reader of the Flint et al. 2012 centre-out files, `Flint_2012_e<k>.mat` (data-sources §2).

Each file is a MATLAB v5 struct `Subject`, one element per recording session; each element
holds a struct array `Trial` whose fields are `Time` (100 Hz), `HandVel` (n, 3), `HandPos`,
`TargetPos`, `Condition` (char) and a struct array `Neuron` with per-trial `Spike` times and a
2 kHz `LFP` column (empty for some Neuron indices). The 12 sessions are keyed `e<k>_<i>`:
file `Flint_2012_e<k>.mat`, 1-based Subject element i.

A session's trials are concatenated as the original does (§6.2 step 1: trials assumed
contiguous). LFP channels and units keep the name of their original Neuron index, 1-based:
"lfp 001", "unit 001". v5 files can only be loaded whole (e3 takes about 1.1 GB of memory).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from neuralcli.errors import DataError

# scipy.io is imported where a file is read: importing it costs ~15 MB and ~0.3 s, which every
# command that merely imports the data sources would otherwise pay.

# Subject elements per file (data-sources §2): 12 sessions in all.
FLINT_FILES: dict[str, int] = {"e1": 1, "e2": 2, "e3": 4, "e4": 3, "e5": 2}
FLINT_SESSIONS: tuple[str, ...] = tuple(
    f"{experiment}_{index}"
    for experiment, count in FLINT_FILES.items()
    for index in range(1, count + 1)
)
TIME_STEP_SECONDS = 0.01  # `Time` is sampled at 100 Hz (§2)


class FlintSession(NamedTuple):
    """One Subject element with its trials concatenated."""

    key: str  # "e2_1": experiment e2, first Subject element
    times: np.ndarray  # (n,) float64 seconds, 100 Hz, every trial's `Time` in order
    hand_velocity: np.ndarray  # (n, 2) float64, first two columns of `HandVel`
    lfp: np.ndarray  # (m, n_channels) float64 at 2 kHz, trials concatenated, empty channels dropped
    lfp_channel_names: list[str]  # (n_channels,) "lfp 007" = Neuron index 7 (1-based)
    unit_spike_times: list[np.ndarray]  # per Neuron index: (n_spikes,) float64 s, sorted
    unit_names: list[str]  # "unit 007" = Neuron index 7 (1-based); every index, even silent
    trial_starts: np.ndarray  # (n_trials,) int64 index into `times` of each trial's first sample
    conditions: list[str]  # (n_trials,) `Condition`, e.g. "Good"
    gaps: float  # largest gap between consecutive trials, seconds (0 when contiguous)


def flint_file_name(experiment: str) -> str:
    """'e3' -> 'Flint_2012_e3.mat'."""
    return f"Flint_2012_{experiment}.mat"


def split_session_key(key: str) -> tuple[str, int]:
    """'e3_2' -> ('e3', 1): the experiment and the 0-based Subject index."""
    match = re.fullmatch(r"(e\d+)_(\d+)", key)
    if match is None or match.group(1) not in FLINT_FILES:
        raise DataError(f"unknown Flint session {key!r}; known: {', '.join(FLINT_SESSIONS)}")
    index = int(match.group(2)) - 1
    if not 0 <= index < FLINT_FILES[match.group(1)]:
        raise DataError(f"unknown Flint session {key!r}; known: {', '.join(FLINT_SESSIONS)}")
    return match.group(1), index


def _experiment_of(path: Path) -> str:
    match = re.search(r"(e\d+)$", path.stem)
    return match.group(1) if match else path.stem


def _elements(value: Any) -> list[Any]:
    """A squeezed struct array as a list of mat_struct (one element squeezes to the struct)."""
    from scipy.io.matlab import mat_struct

    if isinstance(value, mat_struct):
        return [value]
    if isinstance(value, np.ndarray) and value.dtype == object:
        return list(value.ravel())
    return []


def _vector(value: Any) -> np.ndarray:
    """A squeezed numeric column (or scalar, or empty 0x0) as (n,) float64."""
    return np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _load_subjects(path: Path) -> list[Any]:
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path} does not exist; place Flint_2012_e<k>.mat from CRCNS (DREAM) there or run "
            "`neuralcli data fetch flint`"
        )
    try:
        # squeeze_me + mat_struct: attribute access, no per-element (1, 1) wrappers, and a
        # faster load than record arrays.
        content = scipy.io.loadmat(
            path, squeeze_me=True, struct_as_record=False, variable_names=["Subject"]
        )
    except Exception as error:  # loadmat raises ValueError, OSError, MatReadError, ...
        raise DataError(
            f"{path.name} is not a readable MATLAB v5 file ({type(error).__name__}: {error}); "
            "download it again"
        ) from None
    subjects = _elements(content.get("Subject"))
    if not subjects:
        raise DataError(
            f"{path.name} has no `Subject` struct, so it is not a Flint 2012 file; download "
            "Flint_2012_e<k>.mat again"
        )
    return subjects


def _session(subject: Any, key: str, path: Path) -> FlintSession:
    trials = _elements(getattr(subject, "Trial", None))
    if not trials:
        raise DataError(f"{path.name}: session {key} has no trials")
    times, velocities, conditions, trial_lfp, trial_spikes = [], [], [], [], []
    n_neurons = None
    for number, trial in enumerate(trials, start=1):
        time = _vector(trial.Time)  # (n_j,)
        velocity = np.asarray(trial.HandVel, dtype=np.float64).reshape(time.shape[0], -1)
        neurons = _elements(trial.Neuron)
        if n_neurons is None:
            n_neurons = len(neurons)
        elif len(neurons) != n_neurons:
            raise DataError(
                f"{path.name}: session {key} trial {number} has {len(neurons)} Neuron entries, "
                f"trial 1 has {n_neurons}"
            )
        times.append(time)
        velocities.append(velocity[:, :2])  # (n_j, 2): the third column is empty (§2)
        conditions.append(_text(trial.Condition))
        trial_lfp.append([_vector(neuron.LFP) for neuron in neurons])
        trial_spikes.append([_vector(neuron.Spike) for neuron in neurons])
    n_neurons = n_neurons or 0

    # A channel is kept when every trial has its LFP; the sessions keep 95 of 96 (§2).
    kept = [k for k in range(n_neurons) if all(lfp[k].size > 0 for lfp in trial_lfp)]
    lengths = []
    for number, lfp in enumerate(trial_lfp, start=1):
        trial_lengths = {lfp[k].shape[0] for k in kept}
        if len(trial_lengths) > 1:
            raise DataError(
                f"{path.name}: session {key} trial {number} has LFP channels of different "
                f"lengths {sorted(trial_lengths)}"
            )
        lengths.append(trial_lengths.pop() if trial_lengths else 0)
    lfp = np.empty((sum(lengths), len(kept)), dtype=np.float64)  # (m, C)
    row = 0
    for length, channels in zip(lengths, trial_lfp, strict=True):
        for column, k in enumerate(kept):
            lfp[row : row + length, column] = channels[k]
        row += length

    unit_spike_times = [
        np.sort(np.concatenate([spikes[k] for spikes in trial_spikes]))  # pooled (§8)
        for k in range(n_neurons)
    ]
    trial_lengths = np.array([time.shape[0] for time in times], dtype=np.int64)
    trial_starts = np.concatenate([[0], np.cumsum(trial_lengths)[:-1]]).astype(np.int64)
    gap = 0.0
    for previous, current in zip(times[:-1], times[1:], strict=True):
        if previous.size and current.size:
            gap = max(gap, float(current[0] - previous[-1]) - TIME_STEP_SECONDS)
    return FlintSession(
        key=key,
        times=np.concatenate(times),
        hand_velocity=np.concatenate(velocities, axis=0),
        lfp=lfp,
        lfp_channel_names=[f"lfp {k + 1:03d}" for k in kept],
        unit_spike_times=unit_spike_times,
        unit_names=[f"unit {k + 1:03d}" for k in range(n_neurons)],
        trial_starts=trial_starts,
        conditions=conditions,
        gaps=max(gap, 0.0),
    )


def _checked_session(subject: Any, key: str, path: Path) -> FlintSession:
    try:
        return _session(subject, key, path)
    except (AttributeError, TypeError, ValueError) as error:
        raise DataError(
            f"{path.name}: session {key} does not have the Flint 2012 structure "
            f"({type(error).__name__}: {error}); download the file again"
        ) from None


def read_flint_file(path: Path) -> list[FlintSession]:
    """Every Subject element of one file, in order: keys e<k>_1, e<k>_2, ..."""
    path = Path(path)
    subjects = _load_subjects(path)
    experiment = _experiment_of(path)
    return [
        _checked_session(subject, f"{experiment}_{index + 1}", path)
        for index, subject in enumerate(subjects)
    ]


def read_flint_session(path: Path, subject_index: int) -> FlintSession:
    """Subject element `subject_index` (0-based) of one file; DataError when out of range."""
    path = Path(path)
    subjects = _load_subjects(path)
    if not 0 <= subject_index < len(subjects):
        raise DataError(
            f"{path.name} has {len(subjects)} Subject element(s); index {subject_index} "
            f"(session {_experiment_of(path)}_{subject_index + 1}) does not exist"
        )
    key = f"{_experiment_of(path)}_{subject_index + 1}"
    return _checked_session(subjects[subject_index], key, path)
