"""Masked latent statistics and centred re-padding (LDNS §6, human)."""

from __future__ import annotations

import numpy as np
import pytest

from neuralcli.pipelines.latents import LatentStats, centre_valid


def padded_latents(
    lengths: list[int], steps: int = 10, d: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    latents = rng.normal(2.0, 3.0, size=(len(lengths), steps, d)).astype(np.float32)
    mask = (np.arange(steps)[None, :] < np.asarray(lengths)[:, None]).astype(np.uint8)
    return latents, mask


def test_masked_statistics_ignore_padding() -> None:
    latents, mask = padded_latents([10, 4, 7])
    real = np.concatenate([latents[0], latents[1, :4], latents[2, :7]])  # (21, d)
    latents[mask == 0] = 1e6  # padding must not move the statistics
    stats = LatentStats.fit_masked(latents, mask, clip=None)
    np.testing.assert_allclose(stats.mean, real.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats.std, real.std(axis=0), rtol=1e-5)


def test_all_valid_mask_matches_unmasked_fit() -> None:
    latents, _ = padded_latents([10, 10])
    masked = LatentStats.fit_masked(latents, np.ones((2, 10), dtype=bool), clip=5.0)
    plain = LatentStats.fit(latents, clip=5.0)
    np.testing.assert_array_equal(masked.mean, plain.mean)
    np.testing.assert_array_equal(masked.std, plain.std)
    assert masked.clip == 5.0


def test_masked_statistics_reject_bad_masks() -> None:
    latents, mask = padded_latents([3, 4])
    with pytest.raises(ValueError, match="does not match"):
        LatentStats.fit_masked(latents, mask[:, :5], clip=None)
    with pytest.raises(ValueError, match="no real bin"):
        LatentStats.fit_masked(latents, np.zeros_like(mask), clip=None)


def test_centre_valid_cuts_and_replicate_pads() -> None:
    latents, mask = padded_latents([10, 4, 7, 1])
    out = centre_valid(latents, mask)
    assert out.latents.shape == (4, 10, 3) and out.latents.dtype == np.float32
    assert out.mask.dtype == np.uint8
    np.testing.assert_array_equal(out.latents[0], latents[0])  # full length: unchanged
    # 4 real bins in 10: start (10 - 4) // 2 = 3
    assert out.mask[1].tolist() == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    np.testing.assert_array_equal(out.latents[1, 3:7], latents[1, :4])
    np.testing.assert_array_equal(out.latents[1, :3], np.repeat(latents[1, :1], 3, axis=0))
    np.testing.assert_array_equal(out.latents[1, 7:], np.repeat(latents[1, 3:4], 3, axis=0))
    # 7 real bins: start 1, one replicate bin before and two after
    assert out.mask[2].tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 0, 0]
    np.testing.assert_array_equal(out.latents[2, 0], latents[2, 0])
    np.testing.assert_array_equal(out.latents[2, 8:], np.repeat(latents[2, 6:7], 2, axis=0))
    assert out.mask[3].tolist() == [0] * 4 + [1] + [0] * 5
    np.testing.assert_array_equal(out.latents[3], np.repeat(latents[3, :1], 10, axis=0))


def test_centre_valid_into_a_longer_window_and_empty_trial() -> None:
    latents, mask = padded_latents([5, 2], steps=6)
    out = centre_valid(latents, mask, length=9)
    assert out.mask.sum(axis=1).tolist() == [5, 2]
    assert out.mask[0].tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]
    mask[1] = 0
    with pytest.raises(ValueError, match="trial 1 has 0 real bins"):
        centre_valid(latents, mask)


def test_standardise_then_centre_keeps_real_values() -> None:
    latents, mask = padded_latents([8, 3])
    stats = LatentStats.fit_masked(latents, mask, clip=None)
    out = centre_valid(stats.standardise(latents), mask)
    real = out.latents[out.mask == 1]  # (11, d) standardised real bins
    np.testing.assert_allclose(real.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(real.std(axis=0), 1.0, rtol=1e-5)
