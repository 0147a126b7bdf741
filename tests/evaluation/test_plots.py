"""Comparison figures: one non-empty PNG per statistic, written atomically."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from neuralcli.evaluation.plots import plot_comparison

_EXPECTED = {"raster.png", "mean_rate.png", "correlation.png", "isi.png", "population_count.png"}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _spikes(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((40, 32, 1))
    return rng.poisson(np.exp(-1.5 + 0.7 * latent + rng.uniform(-0.5, 0.5, size=(1, 1, 16))))


def test_plot_comparison_writes_png_files(tmp_path):
    out_dir = tmp_path / "plots"
    paths = plot_comparison(_spikes(0), _spikes(1), out_dir, bin_seconds=0.005, title_prefix="t: ")
    assert {path.name for path in paths} == _EXPECTED
    assert {path.name for path in out_dir.iterdir()} == _EXPECTED  # no temporary files left
    for path in paths:
        assert path.parent == out_dir
        content = path.read_bytes()
        assert len(content) > 1000 and content.startswith(_PNG_MAGIC)


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as handle:
            handle.write(b"half a png")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    out_dir = tmp_path / "plots"
    with pytest.raises(RuntimeError, match="disk full"):
        plot_comparison(_spikes(0), _spikes(1), out_dir, bin_seconds=1.0)
    assert list(out_dir.iterdir()) == []
