"""`neuralcli data fetch mc_maze` and `data segment mc_maze`: DANDI files -> LDNS tensors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from neuralcli.data.mc_maze_dataset import (
    DATASET,
    McMazeSettings,
    build_mc_maze,
    is_prepared,
    mc_maze_asset_paths,
    mc_maze_dir,
    mc_maze_path,
    mc_maze_raw_dir,
    mc_maze_settings_dict,
    variant_ref,
)
from neuralcli.data.sources.dandi import fetch_dandi_assets, list_dandi_assets
from neuralcli.data.store import open_session, settings_hash
from neuralcli.errors import DataError
from neuralcli.pipelines.fetch import RawFetchResult, file_progress
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter
from neuralcli.pipelines.segment import SegmentResult, SessionOutcome


def fetch_mc_maze(
    home: str | os.PathLike,
    *,
    variant: str = "full",
    dry_run: bool = False,
    reporter: ProgressReporter | None = None,
    api_url: str | None = None,
    retries: int = 5,
) -> RawFetchResult:
    """Download (or, with `dry_run`, list) the train and test NWB files of an MC_Maze variant.

    The dandiset version is pinned per variant; files the manifest vouches for are skipped,
    interrupted ones resume, every new file is checked against DANDI's digests. `api_url`
    defaults to `$NEURALCLI_DANDI_API_URL` or the public archive.
    """
    reporter = reporter or SilentReporter()
    ref = variant_ref(variant)
    wanted = mc_maze_asset_paths(variant)
    listed = list_dandi_assets(
        ref.dandiset_id, ref.version, path_prefix="sub-Jenkins/", api_url=api_url
    )
    by_path = {asset.path: asset for asset in listed}
    missing = [path for path in wanted if path not in by_path]
    if missing:
        raise DataError(
            f"DANDI:{ref.dandiset_id}/{ref.version} lists no {', '.join(missing)}; the archive "
            "(or the mirror in NEURALCLI_DANDI_API_URL) does not hold the expected MC_Maze files"
        )
    outcomes = fetch_dandi_assets(
        [by_path[path] for path in wanted],
        mc_maze_raw_dir(home),
        dandiset_id=ref.dandiset_id,
        version=ref.version,
        dry_run=dry_run,
        on_progress=file_progress(reporter),
        retries=retries,
    )
    return RawFetchResult(DATASET, mc_maze_raw_dir(home), outcomes, dry_run)


def segment_mc_maze(
    home: str | os.PathLike,
    settings: McMazeSettings | None = None,
    *,
    overwrite: bool = False,
    reporter: ProgressReporter | None = None,
) -> SegmentResult:
    """Build the LDNS trial tensors of the variant in `settings` unless they are on disk."""
    home = Path(home)
    settings = settings or McMazeSettings()
    reporter = reporter or SilentReporter()
    started = time.perf_counter()
    if not overwrite and is_prepared(home, settings):
        path, status = mc_maze_path(home, settings), "skipped"
    else:
        path, status = build_mc_maze(home, settings, reporter=reporter), "written"
    with open_session(path) as reader:
        splits = reader.segments["split"].astype(str)
        n_units = reader.shape("spikes")[-1]
    outcome = SessionOutcome(
        session=path.stem,
        path=path,
        status=status,
        n_segments={s: int(np.sum(splits == s)) for s in ("train", "val", "test")},
        n_channels=0,
        n_units=int(n_units),
        seconds=time.perf_counter() - started,
    )
    return SegmentResult(
        dataset=DATASET,
        directory=mc_maze_dir(home, settings),
        settings_hash=settings_hash(mc_maze_settings_dict(settings)),
        sessions=[outcome],
    )
