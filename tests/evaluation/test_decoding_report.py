"""Fig. 5-style comparison of per-session decoding across models (distillation §10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuralcli.errors import ConfigError, DataError
from neuralcli.evaluation.decoding_report import (
    compare_decoding,
    comparison_rows,
    plot_decoding_comparison,
    summary_rows,
)
from neuralcli.pipelines.decode import DecodeReport, SessionDecoding

SESSIONS = ("I1", "I2", "C1", "C2")
# (train R², val+test R²) per session; numbers chosen so Δ, wins and means are easy by hand.
MS_LFP = {"I1": (0.40, 0.30), "I2": (0.50, 0.40), "C1": (0.30, 0.20), "C2": (0.60, 0.50)}
DISTILLED = {"I1": (0.70, 0.60), "I2": (0.60, 0.50), "C1": (0.50, 0.40), "C2": (0.55, 0.45)}
SINGLE = {"I1": (0.35, 0.25), "I2": (0.45, 0.45), "C1": (0.25, 0.10), "C2": (0.50, 0.30)}


def report(scores: dict[str, tuple[float, float]], order=SESSIONS) -> DecodeReport:
    rows = tuple(
        SessionDecoding(
            session=name,
            train_r2=scores[name][0],
            heldout_r2=scores[name][1],
            n_train_rows=800,
            n_heldout_rows=200,
            n_segments={"train": 32, "val": 4, "test": 4},
        )
        for name in order
    )
    return DecodeReport(path=Path("emb.h5"), target="velocity", attrs={}, sessions=rows)


def summary_of(comparison, group: str, model: str):
    (row,) = [s for s in comparison.summary if s.group == group and s.model == model]
    return row


def test_deltas_wins_and_means_against_the_first_model():
    comparison = compare_decoding(
        {"ms_lfp": report(MS_LFP), "distilled": report(DISTILLED, order=SESSIONS[::-1])}
    )
    assert comparison.baseline == "ms_lfp"
    assert comparison.models == ("ms_lfp", "distilled")
    assert [s.session for s in comparison.sessions] == list(SESSIONS)  # the first report's order
    deltas = [s.delta["distilled"] for s in comparison.sessions]
    assert deltas == pytest.approx([0.30, 0.10, 0.20, -0.05])
    assert all("ms_lfp" not in s.delta for s in comparison.sessions)

    distilled = summary_of(comparison, "all", "distilled")
    assert distilled.n_sessions == 4
    assert distilled.wins == 3
    assert distilled.delta_mean == pytest.approx(0.1375)
    assert (distilled.delta_min, distilled.delta_max) == pytest.approx((-0.05, 0.30))
    assert distilled.heldout_mean == pytest.approx(0.4875)
    assert (distilled.heldout_min, distilled.heldout_max) == pytest.approx((0.40, 0.60))
    assert distilled.train_mean == pytest.approx(0.5875)
    baseline = summary_of(comparison, "all", "ms_lfp")
    assert baseline.heldout_mean == pytest.approx(0.35)
    assert baseline.train_mean == pytest.approx(0.45)
    assert baseline.delta_mean is None and baseline.wins is None
    assert not comparison.grouped
    assert comparison.to_dict()["summary"][1]["wins"] == 3


def test_explicit_baseline_three_models_and_groups():
    comparison = compare_decoding(
        {"single": report(SINGLE), "ms_lfp": report(MS_LFP), "distilled": report(DISTILLED)},
        baseline="ms_lfp",
        groups={"monkey I": ["I1", "I2"], "monkey C": ["C1", "C2"]},
    )
    assert [s.group for s in comparison.summary] == ["monkey I"] * 3 + ["monkey C"] * 3 + [
        "all"
    ] * 3
    assert [s.group for s in comparison.sessions] == [
        "monkey I",
        "monkey I",
        "monkey C",
        "monkey C",
    ]
    single_i = summary_of(comparison, "monkey I", "single")
    assert single_i.delta_mean == pytest.approx((-0.05 + 0.05) / 2)
    assert single_i.wins == 1  # a tie (I2: 0.45 vs 0.40 is a win; I1 is a loss)
    distilled_c = summary_of(comparison, "monkey C", "distilled")
    assert distilled_c.wins == 1
    assert distilled_c.heldout_mean == pytest.approx(0.425)
    assert summary_of(comparison, "all", "single").wins == 1


def test_a_tie_is_not_a_win():
    tied = {name: (0.5, MS_LFP[name][1]) for name in SESSIONS}
    comparison = compare_decoding({"ms_lfp": report(MS_LFP), "same": report(tied)})
    assert summary_of(comparison, "all", "same").wins == 0
    assert summary_of(comparison, "all", "same").delta_mean == 0.0


def test_rows_for_printing():
    comparison = compare_decoding(
        {"ms_lfp": report(MS_LFP), "distilled": report(DISTILLED)},
        groups={"I": ["I1", "I2"], "C": ["C1", "C2"]},
    )
    rows = comparison_rows(comparison)
    assert list(rows[0]) == [
        "session",
        "group",
        "ms_lfp train R²",
        "ms_lfp val+test R²",
        "distilled train R²",
        "distilled val+test R²",
        "Δ distilled",
    ]
    assert rows[0]["Δ distilled"] == pytest.approx(0.30)
    assert [row["session"] for row in rows[4:]] == ["mean (I, 2)", "mean (C, 2)", "mean (all, 4)"]
    assert rows[-1]["distilled val+test R²"] == pytest.approx(0.4875)
    assert rows[-1]["Δ distilled"] == pytest.approx(0.1375)

    summary = summary_rows(comparison)
    assert len(summary) == 6
    assert summary[-1]["group"] == "all (4)"
    assert summary[-1]["wins"] == "3/4"
    assert summary[-2]["wins"] is None  # the baseline


def test_comparison_errors():
    with pytest.raises(DataError, match="session 'C2' was not decoded for distilled"):
        compare_decoding(
            {"ms_lfp": report(MS_LFP), "distilled": report(DISTILLED, order=SESSIONS[:3])}
        )
    with pytest.raises(DataError, match="session 'C2' was not decoded for ms_lfp"):
        compare_decoding(
            {"ms_lfp": report(MS_LFP, order=SESSIONS[:3]), "distilled": report(DISTILLED)}
        )
    with pytest.raises(ConfigError, match="unknown baseline 'x'; the models are: ms_lfp"):
        compare_decoding({"ms_lfp": report(MS_LFP)}, baseline="x")
    with pytest.raises(DataError, match="names session 'Z9'"):
        compare_decoding({"ms_lfp": report(MS_LFP)}, groups={"I": ["Z9"]})
    with pytest.raises(ConfigError, match="in groups 'a' and 'b'"):
        compare_decoding({"ms_lfp": report(MS_LFP)}, groups={"a": ["I1"], "b": ["I1"]})
    with pytest.raises(DataError, match="group 'empty' holds no sessions"):
        compare_decoding({"ms_lfp": report(MS_LFP)}, groups={"empty": []})


def test_plot_is_a_png(tmp_path):
    comparison = compare_decoding(
        {"ms_lfp": report(MS_LFP), "distilled": report(DISTILLED), "single": report(SINGLE)},
        groups={"I": ["I1", "I2"], "C": ["C1", "C2"]},
    )
    path = plot_decoding_comparison(comparison, tmp_path / "plots" / "decoding.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    alone = plot_decoding_comparison(
        compare_decoding({"ms_lfp": report(MS_LFP)}), tmp_path / "alone.png"
    )
    assert alone.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "alone.png",
        "decoding.png",
    ]
