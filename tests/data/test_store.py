"""The processed on-disk format: round trips, atomic writes, corruption, settings hashes."""

import h5py
import numpy as np
import pytest
import yaml

from neuralcli.data.store import (
    SETTINGS_FILE,
    canonical_settings_text,
    directory_size,
    find_processed,
    open_session,
    processed_dir,
    read_session,
    read_settings,
    settings_hash,
    write_session,
    write_settings,
)
from neuralcli.errors import DataError


def _session(rng):
    spikes = rng.poisson(0.3, size=(12, 64, 100)).astype(np.uint8)  # 77 KB: compressed path
    return dict(
        arrays={
            "spikes": spikes,
            "latents": rng.standard_normal((12, 64, 3)).astype(np.float32),
            "counts16": rng.integers(-5, 300, size=(12, 4)).astype(np.int16),
        },
        segments={
            "trial": np.arange(12),
            "split": np.array(["train"] * 8 + ["val"] * 2 + ["test"] * 2),
            "onset": np.linspace(0, 1, 12),
        },
        attrs={"bias": -1.2, "nested": {"a": [1, 2]}, "name": "tiny", "n": np.int64(12)},
        channel_names=[f"n{i}" for i in range(100)],
        units={"spikes": "count per bin", "onset": "s"},
    )


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    session = _session(rng)
    path = write_session(tmp_path / "s.h5", **session)
    loaded = read_session(path)
    assert set(loaded.arrays) == set(session["arrays"])
    for name, array in session["arrays"].items():
        assert loaded.arrays[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded.arrays[name], array)
    for name, column in session["segments"].items():
        np.testing.assert_array_equal(loaded.segments[name], column)
    assert loaded.segments["split"].dtype.kind == "U"
    assert loaded.attrs == {"bias": -1.2, "nested": {"a": [1, 2]}, "name": "tiny", "n": 12}
    assert loaded.channel_names == session["channel_names"]
    assert loaded.units == session["units"]
    with h5py.File(path) as f:
        assert f["arrays/spikes"].compression == "gzip"
        assert f["arrays/latents"].compression is None


def test_read_only_some_arrays(tmp_path):
    path = write_session(tmp_path / "s.h5", **_session(np.random.default_rng(1)))
    assert set(read_session(path, ["latents"]).arrays) == {"latents"}
    with pytest.raises(DataError, match="no array 'rates'"):
        read_session(path, ["rates"])


def test_lazy_reader_reads_rows_in_any_order(tmp_path):
    session = _session(np.random.default_rng(2))
    path = write_session(tmp_path / "s.h5", **session)
    spikes = session["arrays"]["spikes"]
    with open_session(path) as reader:
        assert reader.shape("spikes") == spikes.shape
        assert reader.dtype("spikes") == np.uint8
        for rows in ([5, 1, 1, 11], [0, 11], list(range(12)), [3]):
            np.testing.assert_array_equal(reader.read("spikes", rows), spikes[rows])
        np.testing.assert_array_equal(reader.read("spikes", slice(2, 5)), spikes[2:5])
        assert reader.read("spikes", []).shape == (0, 64, 100)


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    session = _session(np.random.default_rng(3))
    target = tmp_path / "s.h5"
    bad = dict(session, arrays={**session["arrays"], "oops": np.array([1 + 2j])})
    with pytest.raises(ValueError, match="oops"):
        write_session(target, **bad)
    assert list(tmp_path.iterdir()) == []

    write_session(target, **session)
    before = target.read_bytes()
    with pytest.raises(ValueError):
        write_session(target, **bad)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ({"trial": np.arange(3)}, "split"),
        ({"split": np.array(["train", "val"]), "trial": np.arange(3)}, "length"),
        ({"split": np.array(["train", "holdout"])}, "holdout"),
    ],
)
def test_bad_segment_tables_are_refused(tmp_path, segments, message):
    with pytest.raises(ValueError, match=message):
        write_session(tmp_path / "s.h5", arrays={"x": np.zeros(3)}, segments=segments)
    assert not (tmp_path / "s.h5").exists()


def test_corrupt_missing_or_foreign_files_raise_data_error(tmp_path):
    garbage = tmp_path / "processed" / "lorenz" / "abc" / "lorenz.h5"
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DataError, match=r"lorenz\.h5 is corrupt.*neuralcli data fetch lorenz"):
        read_session(garbage)

    good = write_session(tmp_path / "good.h5", **_session(np.random.default_rng(4)))
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated.h5 is corrupt"):
        read_session(truncated)

    with pytest.raises(DataError, match="does not exist"):
        read_session(tmp_path / "missing.h5", remedy="run something")

    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DataError, match="not a neuralcli session file"):
        read_session(foreign)


def test_settings_hash_is_stable_and_tracks_every_setting():
    settings = {"dataset": "lorenz", "n_trials": 5000, "split_fractions": (0.7, 0.1, 0.2)}
    digest = settings_hash(settings)
    assert len(digest) == 12 and int(digest, 16) >= 0
    reordered = {"split_fractions": [0.7, 0.1, 0.2], "n_trials": 5000, "dataset": "lorenz"}
    assert settings_hash(reordered) == digest
    assert settings_hash(dict(settings, n_trials=5001)) != digest
    assert settings_hash(dict(settings, split_fractions=(0.8, 0.1, 0.1))) != digest
    assert settings_hash(dict(settings, extra=None)) != digest
    assert yaml.safe_load(canonical_settings_text(settings))["split_fractions"] == [0.7, 0.1, 0.2]
    with pytest.raises(TypeError):
        settings_hash({"x": object()})


def test_settings_file_hashes_to_its_folder(tmp_path):
    settings = {"dataset": "toy", "rate": 0.3}
    directory = processed_dir(tmp_path, "toy", settings)
    assert directory == tmp_path / "processed" / "toy" / settings_hash(settings)
    write_settings(directory, settings)
    assert read_settings(directory) == settings

    (directory / SETTINGS_FILE).write_text(canonical_settings_text({"dataset": "toy", "rate": 1}))
    with pytest.raises(DataError, match="does not match its folder name"):
        read_settings(directory)
    (directory / SETTINGS_FILE).write_text("a: [unclosed")
    with pytest.raises(DataError, match="not valid YAML"):
        read_settings(directory)


def test_find_processed_lists_finished_folders_only(tmp_path):
    assert find_processed(tmp_path, "toy") == []
    settings = {"dataset": "toy", "rate": 0.3}
    directory = processed_dir(tmp_path, "toy", settings)
    write_session(directory / "b.h5", **_session(np.random.default_rng(5)))
    write_session(directory / "a.h5", **_session(np.random.default_rng(6)))
    unfinished = processed_dir(tmp_path, "toy", {"dataset": "toy", "rate": 0.5})
    write_session(unfinished / "a.h5", **_session(np.random.default_rng(7)))
    assert find_processed(tmp_path, "toy") == []

    write_settings(directory, settings)
    (variant,) = find_processed(tmp_path, "toy")
    assert variant.hash == directory.name
    assert variant.settings == settings
    assert [p.name for p in variant.files] == ["a.h5", "b.h5"]
    assert directory_size(directory) == sum(p.stat().st_size for p in directory.iterdir())
