"""The simulated paired dataset `synthetic-reach` on disk, in the same format as Makin/Flint.

    <home>/processed/synthetic-reach/<hash>/s00.h5 ...   one file per simulated session
    <home>/processed/synthetic-reach/<hash>/settings.yaml

Simulated streams come z-scored already, so segmentation is all that is left to do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from neuralcli.data.segment import SegmentSettings
from neuralcli.data.sources.synthetic_reach import SyntheticReachSettings

DATASET = "synthetic-reach"
RECIPE = "synthetic-reach-v2"
REMEDY = "delete it and run `neuralcli data fetch synthetic-reach` again"


@dataclass(frozen=True)
class SyntheticReachDatasetSettings:
    simulation: SyntheticReachSettings = field(default_factory=SyntheticReachSettings)
    segment: SegmentSettings = field(default_factory=SegmentSettings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def synthetic_reach_settings_dict(
    settings: SyntheticReachDatasetSettings | None = None,
) -> dict[str, Any]:
    settings = settings or SyntheticReachDatasetSettings()
    return {"dataset": DATASET, "recipe": RECIPE, **settings.to_dict()}
