"""Paired session files: write, summary, PairedDataset, collate, samplers, batch source."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from neuralcli.data.paired import (
    PairedBatch,
    PairedBatchSource,
    PairedDataset,
    PairedMemorySource,
    SessionBatchSampler,
    collate_paired,
    paired_source,
    read_paired_summary,
    write_paired_session,
)
from neuralcli.data.recording import PairedRecording
from neuralcli.data.segment import SegmentSettings, segment_recording
from neuralcli.data.store import write_session
from neuralcli.errors import DataError

SETTINGS = SegmentSettings(parent_seconds=0.4, segment_seconds=0.2)  # 40 / 20 bins


def _segmented(session: str, *, n_channels: int, n_units: int, n_bins: int, seed: int):
    rng = np.random.default_rng(seed)
    recording = PairedRecording(
        dataset="synthetic-reach",
        session=session,
        times=0.01 * np.arange(n_bins),
        lfp=rng.normal(size=(n_bins, n_channels)).astype(np.float32),
        spikes=rng.poisson(0.5, size=(n_bins, n_units)).astype(np.uint8),
        velocity=rng.normal(size=(n_bins, 2)).astype(np.float32),
        channel_names=[f"{session}-ch{i}" for i in range(n_channels)],
        unit_names=[f"{session}-u{i}" for i in range(n_units)],
        bin_seconds=0.01,
    )
    return segment_recording(recording, SETTINGS)


@pytest.fixture
def two_sessions(tmp_path: Path):
    a = _segmented("s00", n_channels=3, n_units=5, n_bins=4000, seed=0)  # 100 parents
    b = _segmented("s01", n_channels=6, n_units=2, n_bins=1210, seed=1)  # 30 parents
    files = [
        write_paired_session(tmp_path / "s00.h5", a, attrs={"source": "test"}),
        write_paired_session(tmp_path / "s01.h5", b, attrs={}),
    ]
    return files, (a, b)


def test_summary_reports_counts_and_names(two_sessions) -> None:
    files, (a, b) = two_sessions
    summary = read_paired_summary(files[1])
    assert (summary.dataset, summary.session) == ("synthetic-reach", "s01")
    assert (summary.n_channels, summary.n_units) == (6, 2)
    # 30 parents: val 3, test 3 + 1, train 23; two halves each.
    assert summary.n_segments == {"train": 46, "val": 6, "test": 8}
    assert summary.duration_seconds == pytest.approx(60 * 0.2)
    assert summary.segment_seconds == pytest.approx(0.2)
    assert summary.channel_names == b.channel_names
    assert summary.unit_names == b.unit_names
    assert summary.outliers_dropped == 0


def test_round_trip_preserves_arrays_and_ids(two_sessions) -> None:
    files, (a, b) = two_sessions
    dataset = PairedDataset(files, split=None)
    assert dataset.sessions == ["s00", "s01"]
    assert len(dataset) == 200 + 60
    item = dataset[203]  # session s01, its fourth segment
    assert item.session == 1 and item.segment_id == 3
    assert item.spikes.dtype == torch.uint8 and item.lfp.dtype == torch.float32
    np.testing.assert_array_equal(item.lfp.numpy(), b.lfp[3])
    np.testing.assert_array_equal(item.spikes.numpy(), b.spikes[3])
    np.testing.assert_array_equal(item.velocity.numpy(), b.velocity[3])
    np.testing.assert_array_equal(dataset[-1].lfp.numpy(), b.lfp[-1])
    dataset.close()


def test_split_filter_and_session_selection(two_sessions) -> None:
    files, (a, b) = two_sessions
    val = PairedDataset(files, split="val")
    assert len(val) == int(np.sum(a.segments["split"] == "val")) + 6
    expected = a.segments["segment_id"][a.segments["split"] == "val"]
    np.testing.assert_array_equal(val.item_segment_ids[val.item_sessions == 0], expected)
    for index in range(len(val)):
        item = val[index]
        source = (a, b)[item.session]
        assert source.segments["split"][item.segment_id] == "val"
    # Picking sessions orders them as asked; indices do not depend on the split.
    only = PairedDataset(files, split="test", sessions=["s01", "s00"])
    assert only.sessions == ["s01", "s00"]
    assert set(only.item_sessions.tolist()) == {0, 1}
    assert all(only[i].lfp.shape[1] == 6 for i in np.flatnonzero(only.item_sessions == 0))
    with pytest.raises(DataError, match="no session file"):
        PairedDataset(files, split="train", sessions=["s09"])
    with pytest.raises(DataError, match="unknown split"):
        PairedDataset(files, split="validation")


def test_dataloader_with_workers_pads_channels_and_units(two_sessions) -> None:
    files, (a, b) = two_sessions
    dataset = PairedDataset(files, split="train")
    dataset[0]  # the parent opens a file before the workers fork; they must reopen theirs
    loader = DataLoader(
        dataset, batch_size=64, shuffle=False, num_workers=2, collate_fn=collate_paired
    )
    batches = list(loader)
    assert sum(batch.lfp.shape[0] for batch in batches) == len(dataset)
    mixed = batches[-2]  # rows 128..191: the last s00 rows then s01 rows
    assert isinstance(mixed, PairedBatch)
    assert mixed.lfp.shape[1:] == (20, 6) and mixed.spikes.shape[1:] == (20, 5)
    assert mixed.spikes.dtype == torch.int64
    for row in range(mixed.lfp.shape[0]):
        channels, units = int(mixed.n_channels[row]), int(mixed.n_units[row])
        assert (channels, units) == ((3, 5), (6, 2))[int(mixed.session[row])]
        assert torch.all(mixed.lfp[row, :, channels:] == 0)
        assert torch.all(mixed.spikes[row, :, units:] == 0)
        source = (a, b)[int(mixed.session[row])]
        segment = int(mixed.segment_id[row])
        np.testing.assert_array_equal(mixed.lfp[row, :, :channels].numpy(), source.lfp[segment])
        np.testing.assert_array_equal(mixed.spikes[row, :, :units].numpy(), source.spikes[segment])
    dataset.close()


def test_dataset_pickles_without_open_files(two_sessions) -> None:
    files, _ = two_sessions
    dataset = PairedDataset(files, split="val")
    first = dataset[0]
    clone = pickle.loads(pickle.dumps(dataset))
    assert clone._readers == {}
    np.testing.assert_array_equal(clone[0].lfp.numpy(), first.lfp.numpy())
    dataset.close()
    clone.close()


def test_session_batch_sampler_keeps_sessions_apart(two_sessions) -> None:
    files, _ = two_sessions
    dataset = PairedDataset(files, split="train")
    sampler = SessionBatchSampler(dataset, batch_size=16, seed=3)
    epoch0 = list(sampler)
    epoch1 = list(sampler)
    assert len(dataset) == 158 + 46  # 100 parents: 79 train; 30 parents: 23 train
    assert len(epoch0) == len(sampler) == 10 + 3
    for batches in (epoch0, epoch1):
        flat = sorted(i for batch in batches for i in batch)
        assert flat == list(range(len(dataset)))
        for batch in batches:
            assert len(set(dataset.item_sessions[batch].tolist())) == 1
    assert epoch0 != epoch1
    sampler.set_epoch(0)
    assert list(sampler) == epoch0
    dropping = SessionBatchSampler(dataset, batch_size=16, drop_last=True, seed=3)
    assert len(list(dropping)) == len(dropping) == 9 + 2
    assert all(len(batch) == 16 for batch in dropping)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_paired)
    batch = next(iter(loader))
    assert torch.all(batch.session == batch.session[0])


def test_batch_source_serves_paired_batches(two_sessions) -> None:
    files, (a, b) = two_sessions
    source = PairedBatchSource(PairedDataset(files, split=None))
    assert len(source) == 260
    batch = source.batch(torch.tensor([250, 3, 200, 3]))
    assert batch.lfp.shape == (4, 20, 6) and batch.velocity.shape == (4, 20, 2)
    assert batch.session.tolist() == [1, 0, 1, 0]
    assert batch.segment_id.tolist() == [50, 3, 0, 3]
    np.testing.assert_array_equal(batch.velocity[0].numpy(), b.velocity[50])
    np.testing.assert_array_equal(batch.lfp[1, :, :3].numpy(), a.lfp[3])
    source.dataset.close()


def test_memory_source_serves_the_same_batches_as_the_lazy_one(two_sessions) -> None:
    files, _ = two_sessions
    lazy = PairedBatchSource(PairedDataset(files, split="train"))
    memory = paired_source(PairedDataset(files, split="train"))
    assert isinstance(memory, PairedMemorySource) and len(memory) == len(lazy)
    indices = torch.tensor([len(lazy) - 1, 0, 7, 7])
    for left, right in zip(lazy.batch(indices), memory.batch(indices), strict=True):
        torch.testing.assert_close(left, right, rtol=0, atol=0)
    assert isinstance(paired_source(lazy.dataset, memory_budget=1), PairedBatchSource)
    lazy.dataset.close()


def test_write_refuses_clashing_attrs_and_reader_refuses_other_files(tmp_path: Path) -> None:
    segmented = _segmented("s00", n_channels=2, n_units=2, n_bins=200, seed=0)
    with pytest.raises(ValueError, match="session"):
        write_paired_session(tmp_path / "a.h5", segmented, attrs={"session": "other"})
    other = write_session(
        tmp_path / "lorenz.h5",
        arrays={"spikes": np.zeros((2, 4, 3), np.uint8)},
        segments={"split": np.array(["train", "val"])},
    )
    with pytest.raises(DataError, match="not a paired session file"):
        PairedDataset([other], split=None)
    with pytest.raises(DataError, match="not a paired session file"):
        read_paired_summary(other)
