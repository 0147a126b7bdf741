"""Flint 2012 (MATLAB v5) reader against the layout writer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from neuralcli.data.sources.flint import (
    FLINT_FILES,
    FLINT_SESSIONS,
    read_flint_file,
    read_flint_session,
    split_session_key,
)
from neuralcli.errors import DataError
from neuralcli.testing.raw_layouts import fake_flint_subject, write_flint_mat


@pytest.fixture(scope="module")
def subjects():
    return [fake_flint_subject(seed, n_trials=3, n_channels=96) for seed in (1, 2)]


@pytest.fixture(scope="module")
def e2_file(tmp_path_factory, subjects):
    return write_flint_mat(tmp_path_factory.mktemp("flint") / "Flint_2012_e2.mat", subjects)


def test_loadmat_gives_the_reference_access_pattern(e2_file, subjects):
    m = scipy.io.loadmat(e2_file)
    assert m["Subject"].shape == (2, 1)
    for i, subject in enumerate(subjects):
        trial_array = m["Subject"][i][0]["Trial"]
        assert trial_array.shape == (3, 1)
        for j, trial in enumerate(subject.trials):
            time = trial_array["Time"][j][0]
            assert time.shape == (trial.time.size, 1)
            np.testing.assert_array_equal(time[:, 0], trial.time)
            np.testing.assert_array_equal(
                trial_array["HandVel"][j][0][:, :2], trial.hand_vel[:, :2]
            )
            assert trial_array["TargetPos"][j][0][:, :2].shape == (trial.time.size, 2)
            assert trial_array["Condition"][j][0][0] == trial.condition
            neurons = trial_array["Neuron"][j][0]
            assert neurons.shape == (96, 1)
            kept = [k for k in range(96) if neurons["LFP"][k][0].shape[1] > 0]
            assert len(kept) == 95 and 95 not in kept
            assert neurons["LFP"][95][0].shape == (0, 0)
            assert neurons["LFP"][0][0].shape == (20 * trial.time.size, 1)
            np.testing.assert_array_equal(neurons["Spike"][4][0][:, 0], trial.spikes[4])


def test_round_trip(e2_file, subjects):
    sessions = read_flint_file(e2_file)
    assert [s.key for s in sessions] == ["e2_1", "e2_2"]
    for session, subject in zip(sessions, subjects, strict=True):
        trials = subject.trials
        np.testing.assert_array_equal(session.times, np.concatenate([t.time for t in trials]))
        np.testing.assert_array_equal(
            session.hand_velocity, np.concatenate([t.hand_vel[:, :2] for t in trials])
        )
        lfp = np.concatenate([np.column_stack(t.lfp[:95]) for t in trials])
        assert session.lfp.shape == (20 * session.times.size, 95)
        np.testing.assert_array_equal(session.lfp, lfp)
        assert (
            session.lfp_channel_names[0] == "lfp 001" and session.lfp_channel_names[-1] == "lfp 095"
        )
        assert len(session.unit_spike_times) == len(session.unit_names) == 96
        assert session.unit_names[6] == "unit 007"
        for k in (0, 50, 95):
            expected = np.sort(np.concatenate([t.spikes[k] for t in trials]))
            np.testing.assert_array_equal(session.unit_spike_times[k], expected)
        lengths = [t.time.size for t in trials]
        np.testing.assert_array_equal(session.trial_starts, np.cumsum([0] + lengths[:-1]))
        assert session.conditions == [t.condition for t in trials]
        assert session.gaps == pytest.approx(0.0, abs=1e-9)
    second = read_flint_session(e2_file, 1)
    assert second.key == "e2_2"
    np.testing.assert_array_equal(second.lfp, sessions[1].lfp)


def test_single_subject_single_trial_and_gaps(tmp_path):
    # One element squeezes to a bare struct and a single trial to bare fields; both still read.
    lone = fake_flint_subject(5, n_trials=1, n_channels=3, empty_lfp_channels=(1,))
    path = write_flint_mat(tmp_path / "Flint_2012_e1.mat", [lone], subject_orientation="row")
    (session,) = read_flint_file(path)
    assert session.key == "e1_1" and session.lfp.shape[1] == 2
    assert session.lfp_channel_names == ["lfp 001", "lfp 003"]
    np.testing.assert_array_equal(session.trial_starts, [0])

    gapped = fake_flint_subject(6, n_trials=3, n_channels=3, gap_seconds=0.5)
    path = write_flint_mat(tmp_path / "Flint_2012_e5.mat", [gapped], do_compression=True)
    assert read_flint_session(path, 0).gaps == pytest.approx(0.5)


def test_sessions_and_keys():
    assert FLINT_FILES == {"e1": 1, "e2": 2, "e3": 4, "e4": 3, "e5": 2}
    assert len(FLINT_SESSIONS) == 12 and FLINT_SESSIONS[:3] == ("e1_1", "e2_1", "e2_2")
    assert split_session_key("e3_4") == ("e3", 3)
    with pytest.raises(DataError):
        split_session_key("e1_2")


def test_bad_files_are_data_errors(tmp_path, e2_file):
    with pytest.raises(DataError, match="Flint_2012_e2.mat has 2 Subject"):
        read_flint_session(e2_file, 2)
    no_subject = tmp_path / "Flint_2012_e3.mat"
    scipy.io.savemat(no_subject, {"Other": np.arange(3.0)})
    with pytest.raises(DataError, match="Flint_2012_e3.mat has no `Subject`"):
        read_flint_file(no_subject)
    garbage = tmp_path / "Flint_2012_e4.mat"
    garbage.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataError, match="Flint_2012_e4.mat"):
        read_flint_file(garbage)
    with pytest.raises(DataError, match="does not exist"):
        read_flint_file(tmp_path / "Flint_2012_e1.mat")
