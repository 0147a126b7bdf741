"""Makin `.mat` (MATLAB v7.3) and broadband NWB 1.0.6 readers against the layout writers."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io

from neuralcli.data.sources.makin import open_broadband, read_makin_mat
from neuralcli.errors import DataError
from neuralcli.testing.raw_layouts import (
    fake_broadband,
    fake_makin_session,
    write_broadband_nwb1,
    write_makin_mat,
)

SESSION_FILE = "indy_20160622_01.mat"


@pytest.fixture(scope="module")
def session():
    return fake_makin_session(7, duration_seconds=6.0, n_channels=4, finger_columns=6)


@pytest.mark.parametrize("empty_cells", ["double", "canonical"])
def test_mat_round_trip(tmp_path, session, empty_cells):
    path = write_makin_mat(
        tmp_path / SESSION_FILE, **session._asdict(), waveforms=True, empty_cells=empty_cells
    )
    mat = read_makin_mat(path)
    np.testing.assert_array_equal(mat.t, session.t)
    np.testing.assert_array_equal(mat.cursor_pos, session.cursor_pos)
    np.testing.assert_array_equal(mat.target_pos, session.target_pos)
    assert mat.finger_pos.shape == (session.t.size, 6)
    np.testing.assert_array_equal(mat.finger_pos, session.finger_pos)
    assert mat.channel_names == ["M1 001", "M1 002", "M1 003", "M1 004"]

    expected = [
        (f"{session.channel_names[c]} {'hash' if u == 0 else f'u{u}'}", c, u)
        for c in range(4)
        for u in range(len(session.spikes))
        if session.spikes[u][c].size > 0
    ]
    assert [(unit.name, unit.channel_index, unit.unit_index) for unit in mat.units] == expected
    assert any(session.spikes[u][c].size == 0 for u in range(3) for c in range(4))
    assert mat.units[0].name == "M1 001 hash"
    for unit in mat.units:
        np.testing.assert_array_equal(
            unit.spike_times, session.spikes[unit.unit_index][unit.channel_index]
        )
        assert unit.spike_times.dtype == np.float64


def test_mat_is_laid_out_as_matlab_writes_it(tmp_path, session):
    path = write_makin_mat(tmp_path / SESSION_FILE, **session._asdict())
    assert path.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
    assert path.read_bytes()[124:128] == b"\x00\x02IM"
    k = session.t.size
    with h5py.File(path, "r") as file:
        assert file.userblock_size == 512
        assert file["t"].shape == (1, k)
        assert file["cursor_pos"].shape == (2, k)
        assert file["target_pos"].shape == (2, k)
        assert file["finger_pos"].shape == (6, k)
        np.testing.assert_array_equal(file["cursor_pos"][()], session.cursor_pos.T)
        assert file["chan_names"].shape == (1, 4)
        assert file["spikes"].shape == (3, 4)
        assert file["t"].attrs["MATLAB_class"] == b"double"
        assert file["spikes"].attrs["MATLAB_class"] == b"cell"
        name = file[file["chan_names"][0, 1]]
        assert name.dtype == np.uint16 and name.attrs["MATLAB_class"] == b"char"
        assert name.attrs["MATLAB_int_decode"] == 2
        assert "".join(map(chr, name[()].ravel())) == "M1 002"
        first = file[file["spikes"][0, 0]]
        assert first.shape == (1, session.spikes[0][0].size)
        empty = next(
            file[file["spikes"][u, c]]
            for u in range(3)
            for c in range(4)
            if session.spikes[u][c].size == 0
        )
        assert empty.dtype == np.uint64 and list(empty[()]) == [0, 0]
        assert empty.attrs["MATLAB_empty"] == 1


@pytest.mark.parametrize("shape", [(), (1, 0)])
def test_zero_dimensional_and_zero_size_cells_have_no_spikes(tmp_path, session, shape):
    path = write_makin_mat(tmp_path / SESSION_FILE, **session._asdict())
    with h5py.File(path, "r+") as file:
        odd = file["#refs#"].create_dataset("odd", data=np.zeros(shape))
        refs = file["spikes"][()]
        refs[0, 0] = odd.ref
        file["spikes"][...] = refs
    names = [unit.name for unit in read_makin_mat(path).units]
    assert "M1 001 hash" not in names and "M1 002 hash" in names


def test_three_finger_columns_and_no_finger_pos(tmp_path):
    session = fake_makin_session(1, duration_seconds=2.0, n_channels=2, finger_columns=3)
    mat = read_makin_mat(write_makin_mat(tmp_path / "a.mat", **session._asdict()))
    assert mat.finger_pos.shape == (session.t.size, 3)
    mat = read_makin_mat(
        write_makin_mat(tmp_path / "b.mat", **session._asdict(), omit=["finger_pos"])
    )
    assert mat.finger_pos is None


@pytest.mark.parametrize("field", ["spikes", "cursor_pos", "t", "target_pos"])
def test_missing_field_is_a_data_error(tmp_path, session, field):
    path = write_makin_mat(tmp_path / SESSION_FILE, **session._asdict(), omit=[field])
    with pytest.raises(DataError, match=SESSION_FILE) as error:
        read_makin_mat(path)
    assert f"`{field}`" in str(error.value)
    assert "neuralcli data fetch makin --sessions 20160622_01" in str(error.value)


def test_v5_mat_is_a_data_error(tmp_path):
    path = tmp_path / SESSION_FILE
    scipy.io.savemat(path, {"t": np.arange(3.0)})
    with pytest.raises(DataError, match="not a MATLAB v7.3"):
        read_makin_mat(path)
    with pytest.raises(DataError, match="does not exist"):
        read_makin_mat(tmp_path / "indy_missing.mat")


@pytest.mark.parametrize("chunk_rows", [None, 256])
def test_broadband_reads_volts(tmp_path, chunk_rows):
    rng = np.random.default_rng(0)
    data = rng.integers(-3000, 3000, size=(5000, 6), dtype=np.int16)
    names = [f"elec{i}" for i in range(6)]
    path = write_broadband_nwb1(
        tmp_path / "indy_20160622_01.nwb",
        data_int16=data,
        sampling_rate=24414.0625,
        start_time=12.5,
        conversion=2.5e-7,
        channel_names=names,
        chunk_rows=chunk_rows,
        block_rows=700,
    )
    with open_broadband(path) as source:
        assert (source.n_samples, source.n_channels) == (5000, 6)
        assert source.dtype == np.int16 and source.channel_names == names
        assert source.conversion == pytest.approx(2.5e-7, rel=1e-7)
        assert source.sampling_rate == pytest.approx(24414.0625, rel=1e-9)
        assert source.start_time == 12.5
        assert source.end_time == pytest.approx(12.5 + 4999 / 24414.0625)
        for start, stop in [(0, 5000), (3, 700), (255, 513), (4999, 5000), (10, 10)]:
            volts = source.read(start, stop)
            assert volts.shape == (stop - start, 6) and volts.dtype == np.float64
            np.testing.assert_array_equal(volts, data[start:stop] * source.conversion)
        np.testing.assert_array_equal(source.read_raw(100, 200), data[100:200])
        out = np.full((300, 6), np.nan)
        assert source.read(1000, 1300, out=out) is out
        np.testing.assert_array_equal(out, data[1000:1300] * source.conversion)
        assert source.electrode_map().shape == (6, 3)
        with pytest.raises(ValueError):
            source.read(10, 5001)


def test_broadband_written_in_blocks_matches_whole_array(tmp_path):
    blocks = fake_broadband(3, 5, tile_rows=1000)
    whole = blocks(0, 4321)
    np.testing.assert_array_equal(np.concatenate([blocks(0, 1234), blocks(1234, 4321)]), whole)
    path = write_broadband_nwb1(
        tmp_path / "b.nwb",
        data_int16=blocks,
        n_samples=4321,
        n_channels=5,
        chunk_rows=128,
        block_rows=1000,
        fixed_length_names=True,
    )
    with open_broadband(path) as source:
        np.testing.assert_array_equal(source.read_raw(0, 4321), whole)
        assert source.channel_names == [f"elec{i}" for i in range(1, 6)]
    with h5py.File(path, "r") as file:
        assert file["nwb_version"][()] == b"NWB-1.0.6"
        timestamps = file["acquisition/timeseries/broadband/timestamps"][()]
    np.testing.assert_allclose(np.diff(timestamps), 1 / 24414.0625, rtol=1e-6)


@pytest.mark.parametrize(
    ("options", "missing"),
    [
        ({"omit_broadband": True}, "/acquisition/timeseries/broadband"),
        ({"omit": ["data"]}, "/acquisition/timeseries/broadband/data"),
        ({"omit": ["timestamps"]}, "/acquisition/timeseries/broadband/timestamps"),
        ({"omit": ["conversion"]}, "`conversion`"),
    ],
)
def test_broadband_missing_parts_are_data_errors(tmp_path, options, missing):
    path = write_broadband_nwb1(
        tmp_path / "indy_20160622_01.nwb",
        data_int16=np.zeros((10, 2), dtype=np.int16),
        **options,
    )
    with pytest.raises(DataError, match="indy_20160622_01.nwb") as error:
        open_broadband(path)
    assert missing in str(error.value)
