"""Figures for conditioned samples: non-empty PNGs, written atomically."""

from __future__ import annotations

import numpy as np

from neuralcli.evaluation.condition_plots import (
    angle_bin_index,
    plot_angle_errors,
    plot_condition_rates,
    plot_decoded_velocity,
)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    content = path.read_bytes()
    return len(content) > 1000 and content.startswith(_PNG_MAGIC)


def test_condition_figures_are_written(tmp_path) -> None:
    rng = np.random.default_rng(0)
    real_angles = rng.uniform(-np.pi, np.pi, 30)
    sampled_angles = rng.uniform(-np.pi, np.pi, 20)
    tuning = rng.standard_normal((2, 6))

    def rates(angles: np.ndarray) -> np.ndarray:
        direction = np.stack([np.cos(angles), np.sin(angles)], -1) @ tuning  # (n, 6)
        return np.exp(-2.0 + 0.5 * direction[:, None, :] * np.linspace(0, 1, 70)[None, :, None])

    out = tmp_path / "figures"
    written = [
        plot_condition_rates(
            rates(real_angles),
            real_angles,
            rates(sampled_angles),
            sampled_angles,
            out / "condition_rates.png",
            n_angle_bins=4,
            bin_seconds=0.005,
        ),
        plot_decoded_velocity(
            rng.standard_normal((6, 70, 2)) * 0.1,
            rng.standard_normal((6, 70, 2)) * 0.1,
            out / "decoded_velocity.png",
            n_examples=3,
            bin_seconds=0.005,
        ),
        plot_angle_errors(sampled_angles + 0.2, sampled_angles, out / "angle_errors.png"),
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)  # no temps
    assert all(_is_png(path) for path in written)


def test_angle_sectors_cover_the_circle() -> None:
    angles = np.array([-np.pi, -np.pi / 2 + 1e-9, 0.0, np.pi - 1e-9, np.pi])
    assert angle_bin_index(angles, 4).tolist() == [0, 1, 2, 3, 0]
