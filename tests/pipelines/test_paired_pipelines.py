"""Raw files in the published layouts -> `segment_*` -> session files -> `data_info`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralcli.data.flint_dataset import FlintSettings
from neuralcli.data.makin_dataset import MakinSettings, makin_settings_dict
from neuralcli.data.paired import PairedDataset, read_paired_summary
from neuralcli.data.preprocess.lfp import LfpSettings
from neuralcli.data.segment import SegmentSettings
from neuralcli.data.sources.makin_remote import makin_raw_paths
from neuralcli.data.sources.synthetic_reach import SyntheticReachSettings
from neuralcli.data.store import processed_dir
from neuralcli.data.synthetic_reach_dataset import SyntheticReachDatasetSettings
from neuralcli.errors import DataError
from neuralcli.pipelines.data_info import data_info
from neuralcli.pipelines.segment import prepare_synthetic_reach, segment_flint, segment_makin
from neuralcli.testing.raw_layouts import (
    fake_broadband,
    fake_flint_subject,
    fake_makin_session,
    write_broadband_nwb1,
    write_flint_mat,
    write_makin_mat,
)

SESSION = "20160622_01"
# A broadband rate 16x below the real one keeps the test fast; the recipe is rate-agnostic.
RATE = 24414.0625 / 16
FAST_LFP = LfpSettings(decimation=2)


def write_makin_raw(home, session=SESSION, *, seconds=45.0, omit=(), omit_broadband=False):
    """indy_<session>.mat (v7.3) and .nwb (NWB 1.x) under <home>/raw/makin."""
    mat_path, nwb_path = makin_raw_paths(home, session)
    mat_path.parent.mkdir(parents=True, exist_ok=True)
    fake = fake_makin_session(3, duration_seconds=seconds, n_channels=4, units_per_channel=3)
    write_makin_mat(mat_path, **fake._asdict(), omit=omit)
    n_samples = int((seconds + 2.0) * RATE)
    write_broadband_nwb1(
        nwb_path,
        data_int16=fake_broadband(1, 4, sampling_rate=RATE),
        n_samples=n_samples,
        n_channels=4,
        sampling_rate=RATE,
        omit_broadband=omit_broadband,
    )
    return mat_path, nwb_path


def test_makin_session_end_to_end(tmp_path):
    write_makin_raw(tmp_path)
    settings = MakinSettings(lfp=FAST_LFP, min_rate_hz=0.0)
    result = segment_makin(tmp_path, settings, [SESSION], max_memory_bytes=24 * 1024**2)
    (outcome,) = result.sessions
    assert outcome.status == "written" and outcome.n_channels == 4 and outcome.n_units > 0
    assert sum(outcome.n_segments.values()) >= 4  # >= 2 parents of 10 s, two 5 s halves each
    summary = read_paired_summary(outcome.path)
    assert summary.session == SESSION and summary.segment_seconds == 5.0
    dataset = PairedDataset([outcome.path], split=None)
    item = dataset[0]
    assert item.lfp.shape == (500, 4) and item.velocity.shape == (500, 2)
    assert torch.isfinite(item.lfp).all() and item.spikes.dtype == torch.uint8
    # No leftovers from the decimated intermediate, and settings.yaml marks the folder usable.
    folder = result.directory
    assert (folder / "settings.yaml").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".work")]
    # A second run skips the finished session.
    again = segment_makin(tmp_path, settings, [SESSION], max_memory_bytes=24 * 1024**2)
    assert again.sessions[0].status == "skipped"
    (info,) = data_info(tmp_path, f"makin:{SESSION}", decoding=False)
    assert info.n_channels == 4 and info.settings_hash == result.settings_hash


def test_train_only_zscore_keeps_segments(tmp_path):
    write_makin_raw(tmp_path)
    common = dict(lfp=FAST_LFP, min_rate_hz=0.0)
    session_mode = segment_makin(tmp_path, MakinSettings(**common), [SESSION])
    train_mode = segment_makin(
        tmp_path, MakinSettings(**common, zscore_statistics="train"), [SESSION]
    )
    a = PairedDataset([session_mode.sessions[0].path], split="train")
    b = PairedDataset([train_mode.sessions[0].path], split="train")
    assert len(a) == len(b) and session_mode.settings_hash != train_mode.settings_hash
    lfp = np.stack([b[i].lfp.numpy() for i in range(len(b))])
    # Train rows of the train-z-scored LFP have mean 0 and std 1 per channel.
    np.testing.assert_allclose(lfp.reshape(-1, lfp.shape[-1]).mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(lfp.reshape(-1, lfp.shape[-1]).std(0), 1.0, atol=1e-3)


@pytest.mark.parametrize("field", ["spikes", "cursor_pos"])
def test_makin_mat_missing_field_leaves_nothing(tmp_path, field):
    write_makin_raw(tmp_path, omit=[field])
    with pytest.raises(DataError, match=field):
        segment_makin(tmp_path, MakinSettings(lfp=FAST_LFP), [SESSION])
    folder = processed_dir(tmp_path, "makin", makin_settings_dict(MakinSettings(lfp=FAST_LFP)))
    assert not folder.exists() or not list(folder.iterdir())
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".work")]


def test_makin_nwb_without_broadband(tmp_path):
    write_makin_raw(tmp_path, omit_broadband=True)
    with pytest.raises(DataError, match="broadband"):
        segment_makin(tmp_path, MakinSettings(lfp=FAST_LFP), [SESSION])


def test_makin_unknown_and_missing_sessions(tmp_path):
    with pytest.raises(DataError, match="did you mean 20160622_01"):
        segment_makin(tmp_path, MakinSettings(), ["20160622_02"])
    with pytest.raises(DataError, match="data fetch makin --sessions 20160624_03"):
        segment_makin(tmp_path, MakinSettings(), ["20160624_03"])
    with pytest.raises(DataError, match="no Makin sessions"):
        segment_makin(tmp_path, MakinSettings())


def test_makin_without_lfp_needs_no_broadband(tmp_path):
    mat_path, nwb_path = write_makin_raw(tmp_path)
    nwb_path.unlink()
    result = segment_makin(tmp_path, MakinSettings(with_lfp=False, min_rate_hz=0.0), [SESSION])
    assert result.sessions[0].n_channels == 0 and result.sessions[0].n_units > 0


def write_flint_raw(home):
    subjects = [
        fake_flint_subject(seed, n_trials=14, n_channels=8, empty_lfp_channels=(7,))
        for seed in (0, 1)
    ]
    (home / "raw" / "flint").mkdir(parents=True)
    write_flint_mat(home / "raw" / "flint" / "Flint_2012_e2.mat", subjects)


def test_flint_sessions_end_to_end(tmp_path):
    write_flint_raw(tmp_path)
    result = segment_flint(tmp_path, FlintSettings(min_rate_hz=0.0))
    assert [s.session for s in result.sessions] == ["e2_1", "e2_2"]
    assert all(s.n_channels == 7 for s in result.sessions)
    summary = read_paired_summary(result.sessions[0].path)
    assert summary.n_channels == 7 and sum(summary.n_segments.values()) >= 2
    with pytest.raises(DataError, match="did you mean e2_2"):
        segment_flint(tmp_path, FlintSettings(), ["e2_9"])
    with pytest.raises(DataError, match="Flint_2012_e1.mat is missing"):
        segment_flint(tmp_path, FlintSettings(), ["e1_1"])


def test_flint_file_without_subject(tmp_path):
    from scipy.io import savemat

    path = tmp_path / "raw" / "flint" / "Flint_2012_e1.mat"
    path.parent.mkdir(parents=True)
    savemat(path, {"Something": np.zeros(3)})
    with pytest.raises(DataError, match="Subject"):
        segment_flint(tmp_path, FlintSettings())
    assert not (tmp_path / "processed").exists() or not list((tmp_path / "processed").rglob("*.h5"))


def test_synthetic_reach_and_info(tmp_path):
    settings = SyntheticReachDatasetSettings(
        simulation=SyntheticReachSettings(n_sessions=2, seconds_per_session=120.0),
        segment=SegmentSettings(),
    )
    result = prepare_synthetic_reach(tmp_path, settings)
    assert [s.session for s in result.sessions] == ["s00", "s01"]
    infos = data_info(tmp_path, "synthetic-reach")
    assert [i.session for i in infos] == ["s00", "s01"]
    for info in infos:
        assert info.spikes_r2 > info.lfp_r2 + 0.2 and info.lfp_r2 > 0.0
    with pytest.raises(DataError, match="did you mean s01"):
        data_info(tmp_path, "synthetic-reach:s011")
    with pytest.raises(DataError, match="describes paired datasets"):
        data_info(tmp_path, "lorenz")


def test_makin_sessions_in_parallel_workers(tmp_path):
    sessions = ["20160622_01", "20160624_03"]
    for session in sessions:
        write_makin_raw(tmp_path, session, seconds=25.0)
    settings = MakinSettings(lfp=FAST_LFP, min_rate_hz=0.0)
    result = segment_makin(tmp_path, settings, max_memory_bytes=256 * 1024**2, workers=2)
    assert [s.session for s in result.sessions] == sessions
    assert all(s.status == "written" and s.path.is_file() for s in result.sessions)
