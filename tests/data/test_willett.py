"""Willett 2023 archive: safe streamed extraction, the .mat reader, and the LDNS trial recipe."""

from __future__ import annotations

import gzip
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from neuralcli.data.human_dataset import HumanSettings, collect_human_trials
from neuralcli.data.sources.willett import (
    ARCHIVE_NAME,
    extract_competition_data,
    read_competition_mat,
)
from neuralcli.errors import ConfigError, DataError
from neuralcli.testing.willett_layout import (
    MALICIOUS_KINDS,
    write_competition_mat,
    write_competition_tar,
    write_competition_tree,
    write_malicious_tar,
)

# Test days are written 06.02 before 06.01, so creation order is not name order.
DAYS = {
    "train": {"t12.2022.05.01.mat": [6, 515, 9], "t12.2022.04.28.mat": [4, 3]},
    "test": {"t12.2022.06.02.mat": [5, 6, 7, 8], "t12.2022.06.01.mat": [2, 513, 3, 4, 5]},
    "competitionHoldOut": {"t12.2022.07.01.mat": [3]},
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("tree")
    written = write_competition_tree(root, DAYS, seed=5)
    return root, written


@pytest.fixture(scope="module")
def archive(tree: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_competition_tar(tmp_path_factory.mktemp("arc") / ARCHIVE_NAME, tree[0])


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_extracts_only_split_mat_files_sorted(archive: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    result = extract_competition_data(
        archive, tmp_path, on_progress=lambda done, total: seen.append((done, total))
    )
    assert result.extracted
    assert result.files == {
        "train": ["t12.2022.04.28.mat", "t12.2022.05.01.mat"],
        "test": ["t12.2022.06.01.mat", "t12.2022.06.02.mat"],
    }
    assert leftovers(tmp_path) == ["competitionData"]  # staging folder gone
    assert leftovers(tmp_path / "competitionData") == ["test", "train"]  # no README, no hold-out
    assert seen[-1][0] <= seen[-1][1] == archive.stat().st_size
    again = extract_competition_data(archive, tmp_path)
    assert not again.extracted and again.files == result.files


def test_holdout_on_request_replaces_partial_extraction(archive: Path, tmp_path: Path) -> None:
    extract_competition_data(archive, tmp_path)
    result = extract_competition_data(archive, tmp_path, include_holdout=True)
    assert result.extracted
    assert result.files["competitionHoldOut"] == ["t12.2022.07.01.mat"]
    assert leftovers(tmp_path) == ["competitionData"]


@pytest.mark.parametrize("kind", MALICIOUS_KINDS)
def test_malicious_member_refuses_archive_and_leaves_nothing(
    kind: str, tree: tuple[Path, dict], tmp_path: Path
) -> None:
    bad = write_malicious_tar(tmp_path / "in" / ARCHIVE_NAME, tree[0], kind)
    root = tmp_path / "raw"
    with pytest.raises(DataError) as info:
        extract_competition_data(bad, root)
    message = str(info.value)
    assert "\n" not in message and "evil.mat" in message and ARCHIVE_NAME in message
    expected = {
        "absolute": "absolute path",
        "parent": "'..'",
        "symlink": "symbolic link",
        "hardlink": "hard link",
        "device": "device",
    }[kind]
    assert expected in message
    assert leftovers(root) == []  # the genuine files before it were staged and removed
    assert not Path("/tmp/neuralcli-evil.mat").exists()
    assert not (tmp_path / "evil.mat").exists()


def test_malicious_archive_keeps_an_earlier_good_extraction(
    archive: Path, tree: tuple[Path, dict], tmp_path: Path
) -> None:
    root = tmp_path / "raw"
    extract_competition_data(archive, root)
    bad = write_malicious_tar(tmp_path / "bad.tar.gz", tree[0], "symlink")
    with pytest.raises(DataError, match="symbolic link"):
        extract_competition_data(bad, root, overwrite=True)
    assert leftovers(root) == ["competitionData"]
    assert len(list((root / "competitionData" / "train").glob("*.mat"))) == 2


def test_truncated_archive_is_reported_damaged(archive: Path, tmp_path: Path) -> None:
    cut = tmp_path / ARCHIVE_NAME
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="damaged"):
        extract_competition_data(cut, tmp_path / "raw")
    assert leftovers(tmp_path / "raw") == []


def test_archive_without_train_folder_is_refused(tmp_path: Path) -> None:
    write_competition_tree(tmp_path / "t", {"test": {"a.mat": [3]}})
    bad = write_competition_tar(tmp_path / ARCHIVE_NAME, tmp_path / "t")
    with pytest.raises(DataError, match="competitionData/train"):
        extract_competition_data(bad, tmp_path / "raw")
    assert leftovers(tmp_path / "raw") == []


def test_reader_keeps_first_128_channels_of_tx1(tree: tuple[Path, dict]) -> None:
    root, written = tree
    path = root / "competitionData" / "train" / "t12.2022.05.01.mat"
    day = read_competition_mat(path)
    expected = written["train"]["t12.2022.05.01.mat"]
    assert [t.shape for t in day.trials] == [(6, 128), (515, 128), (9, 128)]
    for got, tx1 in zip(day.trials, expected, strict=True):
        np.testing.assert_array_equal(got, tx1[:, :128])
    assert all(s and s == s.strip() for s in day.sentences)
    assert day.blocks.tolist() == [1, 1, 1]
    tx2 = read_competition_mat(path, feature="tx2", n_channels=4)
    np.testing.assert_array_equal(tx2.trials[0], np.floor(expected[0][:, :4] / 2))


def test_reader_rejects_missing_feature_and_bad_counts(tmp_path: Path) -> None:
    path = tmp_path / "x.mat"
    scipy.io.savemat(path, {"spikePow": np.ones((2, 256))})
    with pytest.raises(DataError, match="no variable 'tx1'"):
        read_competition_mat(path)
    negative = np.full((3, 256), -1.0)
    write_competition_mat(path, [negative])
    with pytest.raises(DataError, match="whole non-negative counts"):
        read_competition_mat(path)
    write_competition_mat(path, [np.zeros((3, 64))])
    with pytest.raises(DataError, match="at least 128 channels"):
        read_competition_mat(path)
    (tmp_path / "junk.mat").write_bytes(gzip.compress(b"not a mat file"))
    with pytest.raises(DataError, match="MATLAB v5"):
        read_competition_mat(tmp_path / "junk.mat")


def test_trials_drop_long_pad_mask_and_split_sequentially(tree: tuple[Path, dict]) -> None:
    root, written = tree
    trials = collect_human_trials(root, HumanSettings())
    seg = trials.segments
    assert trials.spikes.shape == (12, 512, 128) and trials.spikes.dtype == np.uint8
    assert trials.mask.shape == (12, 512) and trials.mask.dtype == np.uint8
    assert trials.n_dropped == {"train": 1, "test": 1}  # 515 and 513 bins > 512
    # Sorted files: train 04.28 then 05.01; test 06.01 (513-bin sentence dropped) then 06.02.
    assert seg["day"].tolist() == (
        ["t12.2022.04.28"] * 2
        + ["t12.2022.05.01"] * 2
        + ["t12.2022.06.01"] * 4
        + ["t12.2022.06.02"] * 4
    )
    assert seg["trial"].tolist() == [0, 1, 0, 2, 0, 2, 3, 4, 0, 1, 2, 3]
    assert seg["length"].tolist() == [4, 3, 6, 9, 2, 3, 4, 5, 5, 6, 7, 8]
    # 8 kept test sentences: the first quarter (2) is val, the rest test, in file order.
    assert seg["split"].tolist() == ["train"] * 4 + ["val"] * 2 + ["test"] * 6
    np.testing.assert_array_equal(trials.mask.sum(axis=1), seg["length"])
    for row, length in enumerate(seg["length"]):
        assert trials.mask[row, :length].all() and not trials.mask[row, length:].any()
        assert not trials.spikes[row, length:].any()  # right-padded with zeros
    source = written["test"]["t12.2022.06.01.mat"][2]  # trial 2 of 06.01, row 5
    np.testing.assert_array_equal(trials.spikes[5, :3], source[:, :128])
    assert seg["source_file"][5] == "test/t12.2022.06.01.mat"


def test_rebinning_sums_pairs_of_20ms_bins(tree: tuple[Path, dict]) -> None:
    root, written = tree
    trials = collect_human_trials(root, HumanSettings(bin_seconds=0.04, max_bins=256, n_channels=8))
    tx1 = written["train"]["t12.2022.04.28.mat"][0]  # 4 bins -> 2
    np.testing.assert_array_equal(trials.spikes[0, :2], tx1[:4, :8].reshape(2, 2, 8).sum(1))
    assert trials.segments["length"][:2].tolist() == [2, 1]  # 3 bins -> 1 (remainder dropped)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("feature", "spikePow"),
        ("n_channels", 300),
        ("max_bins", 0),
        ("val_fraction", 1.5),
        ("bin_seconds", 0.03),
    ],
)
def test_settings_validation_names_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        HumanSettings(**{field: value})


@pytest.mark.skipif(not hasattr(tarfile, "data_filter"), reason="no tarfile extraction filters")
def test_data_filter_strips_special_mode_bits(tree: tuple[Path, dict], tmp_path: Path) -> None:
    archive = tmp_path / ARCHIVE_NAME
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree[0] / "competitionData" / "test", arcname="competitionData/test")
        for path in sorted((tree[0] / "competitionData" / "train").iterdir()):
            info = tar.gettarinfo(path, arcname=f"competitionData/train/{path.name}")
            info.mode = 0o6777  # setuid, setgid, world-writable
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    extract_competition_data(archive, tmp_path / "raw")
    for path in (tmp_path / "raw" / "competitionData" / "train").iterdir():
        mode = path.stat().st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWOTH)
