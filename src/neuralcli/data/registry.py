"""The datasets neuralcli can produce today, and what of each is on disk.

To add a dataset, add one `DatasetInfo` row to `DATASETS`: its name, kind, description,
citation, the settings dict of its default processed variant and what to run when it is
missing. Trial datasets (Lorenz, MC_Maze, human, synthetic-maze) hold trials split
train/val/test; paired datasets (Makin, Flint, synthetic-reach) hold one file per session of
5 s segments.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from neuralcli.data import (
    flint_dataset,
    human_dataset,
    lorenz_dataset,
    makin_dataset,
    mc_maze_dataset,
    synthetic_maze_dataset,
    synthetic_reach_dataset,
)
from neuralcli.data.store import (
    SPLITS,
    ProcessedVariant,
    directory_size,
    find_processed,
    open_session,
    processed_folders,
    read_settings,
    session_files,
    settings_hash,
)
from neuralcli.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: str  # "synthetic" (generated locally) | "downloaded"
    layout: str  # "trials" (one file, split trials) | "paired" (one file per session)
    description: str
    citation: str
    source: str  # where the data comes from: a URL, or how it is generated
    default_settings: Callable[[], dict[str, Any]]  # settings.yaml content of the default variant
    remedy: str  # what to run when it is missing or broken


DATASETS: dict[str, DatasetInfo] = {
    "lorenz": DatasetInfo(
        name="lorenz",
        kind="synthetic",
        layout="trials",
        description=(
            "Lorenz attractor latents (3-d) read out by 128 Poisson neurons; "
            "5000 trials x 256 bins, split 3500/500/1000 (LDNS synthetic benchmark)"
        ),
        citation=(
            "Kapoor, Schulz et al., Latent Diffusion for Neural Spiking Data, "
            "NeurIPS 2024 (arXiv:2407.08751)"
        ),
        source="simulated locally (no download)",
        default_settings=lorenz_dataset.lorenz_settings_dict,
        remedy=lorenz_dataset.REMEDY,
    ),
    "makin": DatasetInfo(
        name="makin",
        kind="downloaded",
        layout="paired",
        description=(
            "Monkey I random-target reaching (O'Doherty, Makin, Sabes): sorted spikes, 96-channel "
            "broadband -> 100 Hz LFP, cursor velocity; 30 sessions, 5 s segments"
        ),
        citation=(
            "O'Doherty et al., Nonhuman Primate Reaching with Multichannel Sensorimotor Cortex "
            "Electrophysiology, Zenodo 10.5281/zenodo.3854034 (+ one broadband record per session)"
        ),
        source="https://zenodo.org/records/3854034",
        default_settings=makin_dataset.makin_settings_dict,
        remedy=makin_dataset.REMEDY,
    ),
    "flint": DatasetInfo(
        name="flint",
        kind="downloaded",
        layout="paired",
        description=(
            "Monkey C centre-out reaching (Flint et al. 2012, CRCNS DREAM): spikes, 95-channel "
            "2 kHz LFP -> 100 Hz, hand velocity; 12 sessions e1_1..e5_2, 5 s segments"
        ),
        citation=(
            "Flint et al., Accurate decoding of reaching movements from field potentials in the "
            "absence of spikes, J Neural Eng 2012; data: CRCNS DREAM Flint_2012"
        ),
        source="https://portal.nersc.gov/project/crcns/download/dream/data_sets/Flint_2012",
        default_settings=flint_dataset.flint_settings_dict,
        remedy=flint_dataset.REMEDY,
    ),
    "mc_maze": DatasetInfo(
        name="mc_maze",
        kind="downloaded",
        layout="trials",
        description=(
            "Monkey J maze reaching (NLB MC_Maze): 182 units (137 held-in + 45 held-out), 5 ms "
            "bins, move onset -250..+450 ms (140 bins), hand velocity; LDNS split 2008/71/216"
        ),
        citation=(
            "Pei et al., Neural Latents Benchmark '21, NeurIPS Datasets and Benchmarks 2021; "
            "DANDI:000128 (variants 000138/000139/000140)"
        ),
        source="https://dandiarchive.org/dandiset/000128/0.220113.0400",
        default_settings=mc_maze_dataset.mc_maze_settings_dict,
        remedy=mc_maze_dataset.REMEDY,
    ),
    "human": DatasetInfo(
        name="human",
        kind="downloaded",
        layout="trials",
        description=(
            "Human speech BCI (Willett et al. 2023, T12): tx1 threshold crossings, 20 ms bins, "
            "first 128 of 256 channels; sentences <= 512 bins right-padded with a mask"
        ),
        citation=(
            "Willett et al., A high-performance speech neuroprosthesis, Nature 2023; data: "
            "Dryad doi:10.5061/dryad.x69p8czpq"
        ),
        source="https://datadryad.org/stash/dataset/doi:10.5061/dryad.x69p8czpq",
        default_settings=human_dataset.human_settings_dict,
        remedy=human_dataset.REMEDY,
    ),
    "synthetic-maze": DatasetInfo(
        name="synthetic-maze",
        kind="synthetic",
        layout="trials",
        description=(
            "Simulated MC_Maze-like reaching: 182 Poisson neurons tuned to hand velocity, 140 "
            "bins of 5 ms around movement onset, 24 reach directions, velocity and reach angle"
        ),
        citation="neuralcli (simulated; no publication)",
        source="simulated locally (no download)",
        default_settings=synthetic_maze_dataset.synthetic_maze_settings_dict,
        remedy=synthetic_maze_dataset.REMEDY,
    ),
    "synthetic-reach": DatasetInfo(
        name="synthetic-reach",
        kind="synthetic",
        layout="paired",
        description=(
            "Simulated multi-session reaching: shared low-dimensional dynamics, Poisson spikes, "
            "a weaker and noisier LFP, velocity readout; 5 s segments (distillation default)"
        ),
        citation="neuralcli (simulated; no publication)",
        source="simulated locally (no download)",
        default_settings=synthetic_reach_dataset.synthetic_reach_settings_dict,
        remedy=synthetic_reach_dataset.REMEDY,
    ),
}


class VariantStatus(NamedTuple):
    hash: str
    settings: dict[str, Any]
    files: list[Path]
    size_bytes: int  # everything in the variant's folder
    n_trials: int | None  # rows of the segment tables; None when a file cannot be read
    is_default: bool  # produced by the dataset's default settings
    problem: str | None  # why a file cannot be read, else None


class DatasetStatus(NamedTuple):
    name: str
    kind: str
    description: str
    citation: str
    present: bool  # at least one readable processed variant on disk
    variants: list[VariantStatus]
    size_bytes: int  # raw plus processed bytes on disk


def get_dataset(name: str) -> DatasetInfo:
    """The registry row for `name`; DataError listing the known datasets otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise DataError(f"unknown dataset {name!r}; known datasets: {known}") from None


def parse_dataset_ref(ref: str) -> tuple[str, str | None]:
    """'lorenz:test' -> ('lorenz', 'test'); 'lorenz' -> ('lorenz', None).

    DataError for an unknown dataset or split, naming the valid ones.
    """
    name, sep, split = ref.strip().partition(":")
    get_dataset(name)
    if not sep:
        return name, None
    if split not in SPLITS:
        raise DataError(
            f"unknown split {split!r} in {ref!r}; valid splits: {', '.join(SPLITS)} "
            f"(e.g. {name}:test)"
        )
    return name, split


def resolve_variant(home: str | os.PathLike, dataset: str) -> ProcessedVariant:
    """The processed variant a bare dataset name refers to.

    The default settings' variant if present, else the only one on disk; DataError when none
    or several (naming their hashes) exist.
    """
    info = get_dataset(dataset)
    variants = find_processed(home, dataset, remedy=info.remedy)
    if not variants:
        raise DataError(
            f"dataset {dataset!r} is not prepared under {home}; "
            f"run `neuralcli data fetch {dataset}` first"
        )
    default_hash = settings_hash(info.default_settings())
    for variant in variants:
        if variant.hash == default_hash:
            return variant
    if len(variants) == 1:
        return variants[0]
    hashes = ", ".join(v.hash for v in variants)
    raise DataError(
        f"dataset {dataset!r} has several processed variants ({hashes}) and none with the "
        f"default settings; delete the unwanted folders under {Path(home) / 'processed' / dataset}"
    )


def list_datasets(home: str | os.PathLike) -> list[DatasetStatus]:
    """Every known dataset with what of it is on disk under `home`."""
    home = Path(home)
    statuses = []
    for info in DATASETS.values():
        default_hash = settings_hash(info.default_settings())
        variants = [
            _variant_status(directory, info, default_hash)
            for directory in processed_folders(home, info.name)
        ]
        size = directory_size(home / "raw" / info.name) + sum(v.size_bytes for v in variants)
        statuses.append(
            DatasetStatus(
                name=info.name,
                kind=info.kind,
                description=info.description,
                citation=info.citation,
                present=any(v.problem is None for v in variants),
                variants=variants,
                size_bytes=size,
            )
        )
    return statuses


def _variant_status(directory: Path, info: DatasetInfo, default_hash: str) -> VariantStatus:
    """What one processed folder holds; a broken folder is described, not raised."""
    settings: dict[str, Any] = {}
    files = session_files(directory)
    rows = 0
    problem = None if files else "no session files"
    try:
        settings = read_settings(directory, remedy=info.remedy)
        for path in files:
            with open_session(path, remedy=info.remedy) as reader:
                rows += len(reader.segments["split"])
    except (DataError, KeyError) as err:
        problem = str(err)
    return VariantStatus(
        hash=directory.name,
        settings=settings,
        files=files,
        size_bytes=directory_size(directory),
        n_trials=rows if problem is None else None,
        is_default=directory.name == default_hash,
        problem=problem,
    )


def parse_session_ref(ref: str) -> tuple[str, str | None]:
    """'makin:20160622_01' -> ('makin', '20160622_01'); 'makin' -> ('makin', None).

    DataError for an unknown dataset or an empty session name.
    """
    name, sep, session = ref.strip().partition(":")
    get_dataset(name)
    if sep and not session.strip():
        raise DataError(f"{ref!r} names no session; use e.g. {name}:<session>, or just {name}")
    return name, session.strip() or None
