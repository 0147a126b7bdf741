"""synthetic-reach: deterministic paired sessions; spikes decode velocity far better than LFP."""

import dataclasses

import numpy as np
import pytest

from neuralcli.data.sources.synthetic_reach import (
    SyntheticReachSettings,
    reach_velocity,
    simulate_session,
    simulate_sessions,
    synthetic_reach_report,
)

SHORT = SyntheticReachSettings(n_sessions=4, seed=3, seconds_per_session=100.0)


@pytest.fixture(scope="module")
def sessions():
    return simulate_sessions(SHORT)


def test_shapes_dtypes_and_names(sessions):
    assert [r.session for r in sessions] == ["s00", "s01", "s02", "s03"]
    for recording in sessions:
        recording.check()
        n = SHORT.n_bins
        assert recording.dataset == "synthetic-reach"
        assert recording.times.shape == (n,) and recording.times.dtype == np.float64
        np.testing.assert_allclose(np.diff(recording.times), SHORT.bin_seconds)
        assert recording.bin_seconds == SHORT.bin_seconds
        assert recording.lfp.dtype == np.float32 and recording.velocity.dtype == np.float32
        assert recording.spikes.dtype == np.uint8 and recording.velocity.shape == (n, 2)
        n_channels, n_units = recording.lfp.shape[1], recording.spikes.shape[1]
        assert SHORT.channel_range[0] <= n_channels <= SHORT.channel_range[1]
        assert SHORT.unit_range[0] <= n_units <= SHORT.unit_range[1]
        assert recording.channel_names[0] == "lfp 000"
        assert recording.channel_names[-1] == f"lfp {n_channels - 1:03d}"
        assert recording.unit_names[-1] == f"unit {n_units - 1:03d}"


def test_sessions_share_the_array_but_not_the_units(sessions):
    assert len({r.lfp.shape[1] for r in sessions}) == 1
    assert len({r.spikes.shape[1] for r in sessions}) > 1


def test_loading_drift_sets_how_alike_the_sessions_lfp_loadings_are():
    """With no drift two sessions share every LFP loading; with full drift they share none.

    Measured through the channel-by-channel correlation structure of the LFP, which the
    loadings set (the latents differ between sessions either way).
    """

    def similarity(drift: float) -> float:
        settings = dataclasses.replace(SHORT, loading_drift=drift, lfp_noise_std=0.0)
        a, b = (np.corrcoef(simulate_session(settings, i).lfp.T) for i in (0, 1))
        upper = np.triu_indices_from(a, k=1)
        return float(np.corrcoef(a[upper], b[upper])[0, 1])

    fixed, partial, fresh = similarity(0.0), similarity(0.2), similarity(1.0)
    assert fixed > partial > fresh
    assert fixed > 0.9 and abs(fresh) < 0.3


def test_same_settings_give_identical_arrays(sessions):
    again = simulate_session(SHORT, 2)
    for name in ("times", "lfp", "spikes", "velocity"):
        np.testing.assert_array_equal(getattr(again, name), getattr(sessions[2], name))


def test_a_session_does_not_depend_on_how_many_sessions_there_are(sessions):
    fewer = dataclasses.replace(SHORT, n_sessions=2)
    more = dataclasses.replace(SHORT, n_sessions=9)
    for settings in (fewer, more):
        recording = simulate_session(settings, 1)
        np.testing.assert_array_equal(recording.lfp, sessions[1].lfp)
        np.testing.assert_array_equal(recording.spikes, sessions[1].spikes)


def test_other_seed_other_data_same_length_same_session_shape(sessions):
    other_seed = simulate_session(dataclasses.replace(SHORT, seed=4), 0)
    assert not np.array_equal(other_seed.velocity, sessions[0].velocity)
    # Channel and unit counts come from their own streams: the length does not move them.
    longer = simulate_session(dataclasses.replace(SHORT, seconds_per_session=120.0), 0)
    assert longer.lfp.shape[1] == sessions[0].lfp.shape[1]
    assert longer.spikes.shape[1] == sessions[0].spikes.shape[1]
    assert longer.n_bins == 12000


def test_spike_counts_are_realistic_for_10_ms_bins(sessions):
    low, high = SHORT.count_range
    for recording in sessions:
        per_unit = recording.spikes.mean(axis=0)
        assert 0.1 <= per_unit.mean() <= 0.3
        assert per_unit.min() >= 0.5 * low and per_unit.max() <= 1.5 * high
        assert recording.spikes.max() < 255


def test_velocity_and_lfp_are_z_scored(sessions):
    for recording in sessions:
        for array in (recording.velocity, recording.lfp):
            np.testing.assert_allclose(array.mean(axis=0), 0.0, atol=1e-4)
            np.testing.assert_allclose(array.std(axis=0), 1.0, atol=1e-4)


def test_reaches_are_minimum_jerk_moves_between_holds_inside_the_unit_disc():
    settings = SyntheticReachSettings()
    velocity = reach_velocity(settings, 6000, np.random.default_rng(0))  # (n, 2)
    speed = np.linalg.norm(velocity, axis=1)
    still = speed == 0
    assert 0.15 < still.mean() < 0.6  # holds of 0.2–0.8 s between reaches of 0.5–1 s
    position = np.cumsum(velocity, axis=0) * settings.bin_seconds  # starts at the origin
    assert np.linalg.norm(position, axis=1).max() < 1.02
    # Every reach starts and ends at rest, with one speed peak in between (bell-shaped).
    starts = np.flatnonzero(still[:-1] & ~still[1:]) + 1
    ends = np.flatnonzero(~still[:-1] & still[1:]) + 1
    start, end = starts[0], ends[ends > starts[0]][0]
    profile = speed[start:end]
    peak = int(profile.argmax())
    assert np.all(np.diff(profile[: peak + 1]) >= 0) and np.all(np.diff(profile[peak:]) <= 0)


def test_spikes_decode_velocity_much_better_than_lfp(sessions):
    for recording in sessions[:2]:
        report = synthetic_reach_report(recording)
        assert report["lfp_r2"] > 0.05
        assert report["spikes_r2"] - report["lfp_r2"] >= 0.2
        assert report["n_train"] == 8000 and report["n_heldout"] == 2000


def test_report_uses_given_split_labels(sessions):
    recording = sessions[0]
    labels = np.where(np.arange(recording.n_bins) % 1000 < 800, "train", "val")
    labels[:500] = "ignored"
    report = synthetic_reach_report(recording, labels)
    assert report["n_train"] == 7500 and report["n_heldout"] == 2000
    assert report["n_channels"] == recording.lfp.shape[1]


def test_to_dict_is_plain_and_round_trips():
    settings = SyntheticReachSettings(channel_range=[10, 12], count_range=[0.1, 1])
    data = settings.to_dict()
    assert data["channel_range"] == [10, 12] and data["count_range"] == [0.1, 1.0]
    assert SyntheticReachSettings(**data) == settings


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_sessions", 0),
        ("seed", -1),
        ("seed", 1.5),
        ("seconds_per_session", 0.0),
        ("seconds_per_session", 0.5),
        ("bin_seconds", -0.01),
        ("channel_range", (48, 24)),
        ("unit_range", (0, 10)),
        ("unit_range", (10,)),
        ("count_range", (0.0, 0.5)),
        ("lfp_cutoff_hz", 60.0),
        ("power_hz_range", (14.0, 55.0)),
        ("lfp_noise_std", -1.0),
        ("spike_tuning_gain", float("nan")),
        ("n_power_bands", True),
    ],
)
def test_invalid_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        SyntheticReachSettings(**{field: value})


def test_session_index_must_be_non_negative():
    with pytest.raises(ValueError, match="index"):
        simulate_session(SHORT, -1)
