"""`neuralcli data fetch` and `data list`: get a dataset onto disk, report what is there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuralcli.data.lorenz_dataset import lorenz_dir, lorenz_settings_dict
from neuralcli.data.registry import DatasetStatus, get_dataset, list_datasets
from neuralcli.data.sources.lorenz import LorenzSettings
from neuralcli.data.store import directory_size, settings_hash
from neuralcli.pipelines.data import ensure_lorenz
from neuralcli.pipelines.progress import ProgressReporter, SilentReporter


@dataclass
class FetchResult:
    dataset: str
    directory: Path
    settings_hash: str
    size_bytes: int
    already_present: bool


def fetch_lorenz(
    home: Path, settings: LorenzSettings, *, reporter: ProgressReporter | None = None
) -> FetchResult:
    """Simulate the Lorenz dataset (Lorenz has nothing to download)."""
    reporter = reporter or SilentReporter()
    directory = lorenz_dir(home, settings)
    present = (directory / "settings.yaml").is_file()
    ensure_lorenz(home, settings, reporter)
    return FetchResult(
        dataset="lorenz",
        directory=directory,
        settings_hash=settings_hash(lorenz_settings_dict(settings)),
        size_bytes=directory_size(directory),
        already_present=present,
    )


def dataset_status(home: Path, name: str | None = None) -> list[DatasetStatus]:
    """Known datasets (or one), with their processed variants on disk."""
    statuses = list_datasets(home)
    if name is None:
        return statuses
    get_dataset(name)  # DataError naming the known datasets
    return [status for status in statuses if status.name == name]
