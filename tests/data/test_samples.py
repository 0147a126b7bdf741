import io
import json

import numpy as np
import pytest

from neuralcli.data.samples import (
    read_samples_npz,
    read_samples_nwb,
    read_spike_array,
    write_samples_npz,
    write_samples_nwb,
)
from neuralcli.errors import DataError

METADATA = {"run": "runs/lorenz-diffusion", "sampler": "ddim", "steps": 50, "seed": 7}


def make_arrays(n=3, length=12, neurons=4, latent=2, seed=0):
    rng = np.random.default_rng(seed)
    rates = rng.gamma(1.0, 0.8, size=(n, length, neurons)).astype(np.float32)
    spikes = rng.poisson(rates)  # (n, T, N) int64
    spikes[0, 0, 0] = 5  # several spikes in one bin
    spikes[:, :, -1] = 0  # a silent neuron
    latents = rng.normal(size=(n, length, latent)).astype(np.float32)
    return spikes, rates, latents


def test_npz_round_trip_keeps_the_exact_name(tmp_path):
    spikes, rates, latents = make_arrays()
    path = tmp_path / "samples.bin"
    write_samples_npz(
        path, spikes=spikes, rates=rates, latents=latents, bin_seconds=0.005, metadata=METADATA
    )
    assert path.is_file() and not (tmp_path / "samples.bin.npz").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["samples.bin"]  # no temporary left over
    loaded = read_samples_npz(path)
    np.testing.assert_array_equal(loaded.spikes, spikes)
    np.testing.assert_array_equal(loaded.rates, rates)
    np.testing.assert_array_equal(loaded.latents, latents)
    assert loaded.bin_seconds == 0.005 and loaded.metadata == METADATA
    with np.load(path, allow_pickle=False) as archive:
        assert json.loads(str(archive["metadata_json"])) == METADATA
    array = read_spike_array(path)
    assert array.spikes.dtype == np.int64 and array.bin_seconds == 0.005


def test_npz_and_nwb_round_trips_give_identical_counts(tmp_path):
    spikes, rates, latents = make_arrays(n=4, length=20, neurons=5)
    spikes[2, 7, 1] = 37
    write_samples_npz(
        tmp_path / "s.npz",
        spikes=spikes,
        rates=rates,
        latents=latents,
        bin_seconds=0.02,
        metadata=METADATA,
    )
    write_samples_nwb(
        tmp_path / "s.nwb",
        spikes=spikes,
        bin_seconds=0.02,
        metadata=METADATA,
        session_description="neuralcli samples test",
    )
    from_npz = read_spike_array(tmp_path / "s.npz")
    from_nwb = read_samples_nwb(tmp_path / "s.nwb")
    np.testing.assert_array_equal(from_nwb.spikes, from_npz.spikes)
    np.testing.assert_array_equal(from_nwb.spikes, spikes)
    assert from_nwb.bin_seconds == from_npz.bin_seconds == 0.02


def test_nwb_layout(tmp_path):
    from pynwb import NWBHDF5IO

    spikes = np.zeros((2, 4, 2), dtype=np.int64)
    spikes[0, 1, 0] = 2
    spikes[1, 3, 1] = 1
    path = tmp_path / "s.nwb"
    write_samples_nwb(
        path,
        spikes=spikes,
        bin_seconds=0.5,
        metadata=METADATA,
        session_description="layout",
        trial_gap_seconds=1.0,
    )
    with NWBHDF5IO(str(path), mode="r") as nwb_io:
        nwbfile = nwb_io.read()
        notes = json.loads(nwbfile.notes)
        assert notes["metadata"] == METADATA and notes["bin_seconds"] == 0.5
        assert nwbfile.session_description == "layout"
        np.testing.assert_allclose(nwbfile.trials.start_time.data[:], [0.0, 3.0])
        np.testing.assert_allclose(nwbfile.trials.stop_time.data[:], [2.0, 5.0])
        assert len(nwbfile.units) == 2
        np.testing.assert_allclose(nwbfile.units.get_unit_spike_times(0), [0.625, 0.875])
        np.testing.assert_allclose(nwbfile.units.get_unit_spike_times(1), [3.0 + 1.75])


def test_writers_reject_bad_input(tmp_path):
    spikes, rates, latents = make_arrays()
    with pytest.raises(ValueError, match="integer"):
        write_samples_npz(
            tmp_path / "a.npz",
            spikes=spikes.astype(float),
            rates=rates,
            latents=latents,
            bin_seconds=0.01,
            metadata={},
        )
    with pytest.raises(ValueError, match="latents"):
        write_samples_npz(
            tmp_path / "a.npz",
            spikes=spikes,
            rates=rates,
            latents=latents[:, :5],
            bin_seconds=0.01,
            metadata={},
        )
    with pytest.raises(ValueError, match="bin_seconds"):
        write_samples_nwb(
            tmp_path / "a.nwb", spikes=spikes, bin_seconds=0.0, metadata={}, session_description="x"
        )
    assert list(tmp_path.iterdir()) == []


def test_read_spike_array_accepts_float_counts_and_file_objects(tmp_path):
    counts = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    path = tmp_path / "user.npz"
    np.savez(path, spikes=counts + 1e-7, other=np.zeros(3))
    array = read_spike_array(path)
    np.testing.assert_array_equal(array.spikes, counts.astype(np.int64))
    assert array.bin_seconds is None
    buffer = io.BytesIO()
    np.savez(buffer, spikes=counts.astype(np.uint8), bin_seconds=0.01)
    buffer.seek(0)
    from_buffer = read_spike_array(buffer)
    assert from_buffer.spikes.dtype == np.int64 and from_buffer.bin_seconds == 0.01
    np.testing.assert_array_equal(read_spike_array(counts).spikes, counts)


def save(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.npz", "no such file"),
        (
            lambda d: (d / "text.npz").write_text("trial,time\n1,2\n") and d / "text.npz",
            "not a readable .npz",
        ),
        (
            lambda d: (d / "cut.npz").write_bytes(b"PK\x03\x04broken") and d / "cut.npz",
            "not a readable .npz",
        ),
        (
            lambda d: np.save(d / "single.npy", np.zeros((1, 2, 3))) or d / "single.npy",
            "single .npy",
        ),
        (
            lambda d: save(d / "keys.npz", counts=np.zeros((1, 2, 3)), rates=np.zeros(1)),
            "arrays present: counts, rates",
        ),
        (lambda d: save(d / "rank.npz", spikes=np.zeros((4, 5))), "must have 3"),
        (lambda d: save(d / "neg.npz", spikes=-np.ones((1, 2, 3), dtype=np.int32)), "negative"),
        (lambda d: save(d / "negf.npz", spikes=-np.ones((1, 2, 3))), "negative"),
        (lambda d: save(d / "nan.npz", spikes=np.full((1, 2, 3), np.nan)), "NaN"),
        (lambda d: save(d / "rates.npz", spikes=np.full((1, 2, 3), 0.3)), "non-integer"),
        (lambda d: save(d / "empty.npz", spikes=np.zeros((0, 5, 3))), "empty"),
        (lambda d: save(d / "text_spikes.npz", spikes=np.array([[["a"]]])), "dtype"),
        (lambda d: save(d / "obj.npz", spikes=np.array([[[1]]], dtype=object)), "Python objects"),
        (lambda d: save(d / "bin.npz", spikes=np.ones((1, 2, 3)), bin_seconds=-1.0), "bin width"),
    ],
    ids=[
        "missing",
        "text",
        "truncated",
        "npy",
        "no-spikes",
        "rank",
        "negative-int",
        "negative-float",
        "nan",
        "non-integer",
        "empty",
        "strings",
        "objects",
        "bin-seconds",
    ],
)
def test_read_spike_array_errors_name_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(DataError, match=message) as caught:
        read_spike_array(path)
    text = str(caught.value)
    assert str(path) in text and "\n" not in text


def test_read_samples_nwb_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_samples_nwb(tmp_path / "none.nwb")
    (tmp_path / "bad.nwb").write_text("not hdf5")
    with pytest.raises(DataError, match="bad.nwb"):
        read_samples_nwb(tmp_path / "bad.nwb")
