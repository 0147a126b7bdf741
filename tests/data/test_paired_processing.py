"""Train-only z-score statistics (data-sources §10 quirk 6) keep the session-mode segments."""

import numpy as np

from neuralcli.data.paired_processing import normalise_and_segment
from neuralcli.data.recording import PairedRecording
from neuralcli.data.segment import SegmentSettings


def _raw_recording(n_bins: int, seed: int) -> PairedRecording:
    rng = np.random.default_rng(seed)
    velocity = rng.normal(size=(n_bins, 2)) * np.array([5.0, 0.2]) + 3.0
    velocity[1200:1300] *= 30  # one noisy parent for the outlier filter
    return PairedRecording(
        dataset="flint",
        session="e1_1",
        times=50.0 + 0.01 * np.arange(n_bins),
        lfp=rng.normal(2.0, 4.0, size=(n_bins, 3)).astype(np.float32),
        spikes=rng.poisson(0.3, size=(n_bins, 4)).astype(np.uint8),
        velocity=velocity.astype(np.float32),
        channel_names=["a", "b", "c"],
        unit_names=["u0", "u1", "u2", "u3"],
        bin_seconds=0.01,
    )


def test_train_only_statistics_keep_the_segment_table():
    settings = SegmentSettings(parent_seconds=1.0, segment_seconds=0.5, velocity_outlier_iqr=1.5)
    session = normalise_and_segment(_raw_recording(3000, 4), settings)
    train_only = normalise_and_segment(_raw_recording(3000, 4), settings, zscore_statistics="train")
    assert session.outliers_dropped >= 1
    for name, column in session.segments.items():
        np.testing.assert_array_equal(train_only.segments[name], column)
    is_train = train_only.segments["split"] == "train"
    for array in (train_only.velocity, train_only.lfp):
        train = array[is_train].reshape(-1, array.shape[-1])
        np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(train.std(axis=0), 1, atol=1e-4)
    # Session mode: the whole kept session, not the train rows, has mean 0.
    assert not np.allclose(session.velocity[is_train].reshape(-1, 2).mean(axis=0), 0, atol=1e-3)
