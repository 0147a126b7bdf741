"""The LDNS §11.2 Table-1 protocol: shared bootstrap sets, the noise-floor row, the quirk."""

from __future__ import annotations

import numpy as np
import pytest

from neuralcli.errors import ConfigError, DataError
from neuralcli.evaluation.spike_stats import (
    bootstrap_compare,
    compare_statistics,
    trial_statistics,
)
from neuralcli.evaluation.table1 import (
    DATA_VS_DATA,
    PUBLISHED_TABLE1,
    TABLE1_METRICS,
    bootstrap_table,
    draw_bootstraps,
    format_table1,
    published_table1_rows,
    table1_rows,
)

BIN = 0.005


def _spikes(seed: int, n_trials: int = 30, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n_trials, 24, 1))
    offsets = np.linspace(-2.0, -0.5, 10)[None, None, :]
    return rng.poisson(scale * np.exp(offsets + 0.6 * latent)).astype(np.int64)


def test_index_sets_are_drawn_once_and_shared_by_all_methods() -> None:
    reference = _spikes(0)
    model = _spikes(1)
    table = bootstrap_table(
        reference, {"a": model, "b": model.copy()}, n_bootstraps=3, seed=7, bin_seconds=BIN
    )
    expected = draw_bootstraps(30, n_bootstraps=3, seed=7)
    for drawn, again in zip(table.draws.index_sets, expected.index_sets, strict=True):
        assert np.array_equal(drawn, again)
    a, b = table.row("a"), table.row("b")
    assert a.mean == b.mean and a.std == b.std  # same sets -> same numbers
    # Each resample is compared with the full reference on the common population-count grid.
    model_stats, reference_stats = (
        trial_statistics(model, bin_seconds=BIN),
        trial_statistics(reference, bin_seconds=BIN),
    )
    for trials, run in zip(expected.index_sets, a.runs, strict=True):
        direct = compare_statistics(
            model_stats.pooled(trials), reference_stats.pooled(), max_count=table.max_count
        )
        assert run == direct
    assert table.max_count == max(int(reference.sum(2).max()), int(model.sum(2).max()))


def test_data_vs_data_row_and_isi_quirk() -> None:
    reference = _spikes(2, n_trials=31)
    quirky = bootstrap_table(reference, {}, n_bootstraps=2, seed=3, bin_seconds=BIN)
    plain = bootstrap_table(reference, {}, n_bootstraps=2, seed=3, bin_seconds=BIN, isi_quirk=False)
    floor = quirky.row(DATA_VS_DATA)
    assert [row.method for row in quirky.rows] == [DATA_VS_DATA]
    assert floor.n_trials == 16  # the complementary half of 31 trials
    stats = trial_statistics(reference, bin_seconds=BIN)
    full = stats.pooled()
    for trials, (half, complement), run, plain_run in zip(
        quirky.draws.index_sets,
        quirky.draws.halves,
        floor.runs,
        plain.row(DATA_VS_DATA).runs,
        strict=True,
    ):
        assert half.size == 15 and complement.size == 16
        assert np.array_equal(np.sort(np.concatenate([half, complement])), np.arange(31))
        bootstrapped_half = stats.pooled(trials[complement])
        other_half = stats.pooled(half)
        kwargs = {"max_count": quirky.max_count}
        assert run == compare_statistics(
            bootstrapped_half, other_half, isi_reference=full, **kwargs
        )
        assert plain_run == compare_statistics(bootstrapped_half, other_half, **kwargs)
        # Only the ISI metrics depend on the quirk.
        assert run.kl_population_count == plain_run.kl_population_count
        assert run.rmse_correlation == plain_run.rmse_correlation
        assert run.rmse_mean_isi != plain_run.rmse_mean_isi


def test_matches_the_single_method_protocol_of_spike_stats() -> None:
    reference, model = _spikes(4), _spikes(5)
    table = bootstrap_table(reference, {"model": model}, n_bootstraps=4, bin_seconds=BIN)
    single = bootstrap_compare(
        model, reference, n_bootstrap=4, bin_seconds=BIN, max_count=table.max_count
    )
    assert table.row("model").mean == single.model_mean
    assert table.row("model").std == single.model_std
    assert table.row(DATA_VS_DATA).mean == single.floor_mean


def test_identical_trials_give_zero_metrics() -> None:
    trial = _spikes(6, n_trials=1)
    reference = np.repeat(trial, 12, axis=0)  # every resample equals the reference
    table = bootstrap_table(reference, {"copy": reference.copy()}, n_bootstraps=3, bin_seconds=BIN)
    for row in table.rows:
        for name in TABLE1_METRICS:
            assert row.mean[name] == pytest.approx(0.0, abs=1e-12)
            assert row.std[name] == pytest.approx(0.0, abs=1e-12)


def test_std_over_bootstraps_and_worse_model_scores_worse() -> None:
    reference = _spikes(7)
    table = bootstrap_table(
        reference,
        {"good": _spikes(8), "too active": _spikes(9, scale=1.6)},
        n_bootstraps=5,
        bin_seconds=BIN,
    )
    for row in table.rows:
        for name in TABLE1_METRICS:
            values = [getattr(run, name) for run in row.runs]
            assert row.mean[name] == pytest.approx(np.mean(values))
            assert row.std[name] == pytest.approx(np.std(values))  # ddof 0
        assert row.std["kl_population_count"] > 0.0
    good, bad = table.row("good"), table.row("too active")
    assert bad.mean["kl_population_count"] > 5 * good.mean["kl_population_count"]
    assert bad.mean["rmse_mean_isi"] > good.mean["rmse_mean_isi"]


def test_seed_determinism() -> None:
    reference, model = _spikes(10), _spikes(11)
    first = bootstrap_table(reference, {"m": model}, n_bootstraps=2, seed=1, bin_seconds=BIN)
    again = bootstrap_table(reference, {"m": model}, n_bootstraps=2, seed=1, bin_seconds=BIN)
    other = bootstrap_table(reference, {"m": model}, n_bootstraps=2, seed=2, bin_seconds=BIN)
    assert table1_rows(first) == table1_rows(again)
    assert table1_rows(first) != table1_rows(other)


def test_methods_of_another_size_share_their_own_sets() -> None:
    reference = _spikes(12, n_trials=20)
    small = _spikes(13, n_trials=8)
    table = bootstrap_table(
        reference, {"x": small, "y": small.copy()}, n_bootstraps=2, bin_seconds=BIN
    )
    assert set(table.draws.extra_sets) == {8}
    assert all(s.size == 8 and s.max() < 8 for s in table.draws.extra_sets[8])
    assert table.row("x").mean == table.row("y").mean
    # The reference-size sets (and so the noise floor) do not depend on the other methods.
    alone = bootstrap_table(reference, {}, n_bootstraps=2, bin_seconds=BIN)
    assert table.row(DATA_VS_DATA).mean == alone.row(DATA_VS_DATA).mean


def test_rows_published_values_and_text() -> None:
    table = bootstrap_table(_spikes(14), {"LDNS": _spikes(15)}, n_bootstraps=2, bin_seconds=BIN)
    rows = table1_rows(table)
    assert [row["method"] for row in rows] == ["LDNS", DATA_VS_DATA]
    assert set(rows[0]) == {"method", "n_trials"} | {
        key for name in TABLE1_METRICS for key in (name, f"{name}_std")
    }
    assert PUBLISHED_TABLE1["LDNS + spike history"]["rmse_mean_isi"] == (0.0245, 0.0021)
    assert PUBLISHED_TABLE1[DATA_VS_DATA]["kl_population_count"] == (1.4e-4, 0.6e-4)
    published = published_table1_rows()
    assert len(published) == 7 and published[3]["method"] == "LDNS"
    assert published[3]["rmse_std_isi_std"] == 0.0011
    text = format_table1(table)
    assert "data vs data" in text and "AutoLFADS + spike history" in text and "±" in text


def test_rejects_bad_inputs() -> None:
    reference = _spikes(16)
    with pytest.raises(ConfigError, match="noise-floor"):
        bootstrap_table(reference, {DATA_VS_DATA: reference}, bin_seconds=BIN)
    with pytest.raises(DataError, match="neurons"):
        bootstrap_table(reference, {"m": reference[:, :, :5]}, bin_seconds=BIN)
    with pytest.raises(ConfigError, match="n_bootstraps"):
        bootstrap_table(reference, {}, n_bootstraps=0, bin_seconds=BIN)
    with pytest.raises(DataError, match="bin_seconds"):
        bootstrap_table(trial_statistics(reference, bin_seconds=1.0), {}, bin_seconds=BIN)
