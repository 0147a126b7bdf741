"""Compare per-session decoding across models, as in the paper's Fig. 5 (distillation §10).

Each model's embeddings of the same sessions are decoded on their own (pipelines/decode.py); here
the per-session R² are lined up against a baseline model: Δ of held-out R² per session, and per
group of sessions (e.g. one per monkey) plus all sessions together the mean and range of held-out
R², the mean and range of Δ, the sessions a model wins, and the mean train R². Δ and every
summary are computed from unrounded R².
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from neuralcli.errors import ConfigError, DataError
from neuralcli.runtime.files import atomic_path

if TYPE_CHECKING:
    from neuralcli.pipelines.decode import DecodeReport

ALL_SESSIONS = "all"


class SessionComparison(NamedTuple):
    session: str
    group: str | None  # the group it belongs to, None when ungrouped
    train_r2: dict[str, float]  # model -> train R²
    heldout_r2: dict[str, float]  # model -> val+test R²
    delta: dict[str, float]  # model (baseline excluded) -> its val+test R² − the baseline's


class ModelSummary(NamedTuple):
    """One model over one group of sessions (a row of the §10 summary table)."""

    group: str  # a group name, or "all"
    model: str
    n_sessions: int
    heldout_mean: float
    heldout_min: float
    heldout_max: float
    train_mean: float
    delta_mean: float | None  # None for the baseline itself
    delta_min: float | None
    delta_max: float | None
    wins: int | None  # sessions where the model's val+test R² is above the baseline's


@dataclass(frozen=True)
class DecodingComparison:
    models: tuple[str, ...]  # in the order given; the baseline among them
    baseline: str
    sessions: tuple[SessionComparison, ...]  # in the first report's order
    summary: tuple[ModelSummary, ...]  # per group (given order, then "all"), per model

    @property
    def grouped(self) -> bool:
        return any(s.group is not None for s in self.sessions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": list(self.models),
            "baseline": self.baseline,
            "sessions": [s._asdict() for s in self.sessions],
            "summary": [s._asdict() for s in self.summary],
        }


def compare_decoding(
    reports: Mapping[str, DecodeReport],
    *,
    baseline: str | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> DecodingComparison:
    """Line up per-session decoding of several models against `baseline` (default: the first).

    reports: model label -> its DecodeReport; every report must hold the same sessions.
    groups: optional group name -> its sessions (disjoint), summarised apart and then together.
    """
    if not reports:
        raise ValueError("compare_decoding needs at least one report")
    models = tuple(reports)
    baseline = models[0] if baseline is None else baseline
    if baseline not in reports:
        raise ConfigError(f"unknown baseline {baseline!r}; the models are: {', '.join(models)}")
    targets = sorted({report.target for report in reports.values()})
    if len(targets) > 1:
        raise DataError(f"the reports decode different targets ({', '.join(targets)})")
    tables = {model: {s.session: s for s in report.sessions} for model, report in reports.items()}
    order = [s.session for s in reports[models[0]].sessions]
    for session in dict.fromkeys(name for table in tables.values() for name in table):
        lacking = [model for model, table in tables.items() if session not in table]
        if lacking:
            raise DataError(
                f"session {session!r} was not decoded for {', '.join(lacking)}; decode the same "
                "sessions with every model (--sessions)"
            )
    group_of = _group_of(groups, order)

    rows = []
    for session in order:
        train = {model: tables[model][session].train_r2 for model in models}
        heldout = {model: tables[model][session].heldout_r2 for model in models}
        delta = {m: heldout[m] - heldout[baseline] for m in models if m != baseline}
        rows.append(SessionComparison(session, group_of.get(session), train, heldout, delta))

    summary = []
    for group, members in [*(groups or {}).items(), (ALL_SESSIONS, order)]:
        members = set(members)
        chosen = [row for row in rows if row.session in members]
        summary.extend(_summarise(group, model, chosen, baseline) for model in models)
    return DecodingComparison(
        models=models, baseline=baseline, sessions=tuple(rows), summary=tuple(summary)
    )


def comparison_rows(comparison: DecodingComparison) -> list[dict[str, Any]]:
    """The per-session table (§10 main table), then one mean row per group and for all.

    Keys in column order: session, group (when grouped), "<model> train R²" and
    "<model> val+test R²" per model, "Δ <model>" per model other than the baseline.
    """
    others = [m for m in comparison.models if m != comparison.baseline]
    rows = []
    for row in comparison.sessions:
        out: dict[str, Any] = {"session": row.session}
        if comparison.grouped:
            out["group"] = row.group
        for model in comparison.models:
            out[f"{model} train R²"] = row.train_r2[model]
            out[f"{model} val+test R²"] = row.heldout_r2[model]
        for model in others:
            out[f"Δ {model}"] = row.delta[model]
        rows.append(out)
    for group in dict.fromkeys(s.group for s in comparison.summary):
        of_group = {s.model: s for s in comparison.summary if s.group == group}
        out = {"session": f"mean ({group}, {of_group[comparison.baseline].n_sessions})"}
        if comparison.grouped:
            out["group"] = group
        for model in comparison.models:
            out[f"{model} train R²"] = of_group[model].train_mean
            out[f"{model} val+test R²"] = of_group[model].heldout_mean
        for model in others:
            out[f"Δ {model}"] = of_group[model].delta_mean
        rows.append(out)
    return rows


def summary_rows(comparison: DecodingComparison) -> list[dict[str, Any]]:
    """The §10 summary table: one row per group and model, wins as "k/n"."""
    return [
        {
            "group": f"{s.group} ({s.n_sessions})",
            "model": s.model,
            "val+test R² mean": s.heldout_mean,
            "val+test R² min": s.heldout_min,
            "val+test R² max": s.heldout_max,
            "mean Δ": s.delta_mean,
            "Δ min": s.delta_min,
            "Δ max": s.delta_max,
            "wins": None if s.wins is None else f"{s.wins}/{s.n_sessions}",
            "train R² mean": s.train_mean,
        }
        for s in comparison.summary
    ]


def plot_decoding_comparison(comparison: DecodingComparison, path: str | os.PathLike) -> Path:
    """Paired per-session held-out R² across models, and baseline-vs-model scatter; PNG.

    Left: x = model, y = val+test R², one thin line per session (coloured by group when
    grouped), the mean over sessions in bold. Right (when there is more than the baseline):
    each other model's R² against the baseline's, one point per session, with the diagonal.
    """
    from matplotlib.figure import Figure  # matplotlib is slow to import; only plots need it

    path = Path(path)
    models = list(comparison.models)
    others = [m for m in models if m != comparison.baseline]
    heldout = np.array([[row.heldout_r2[m] for m in models] for row in comparison.sessions])
    figure = Figure(figsize=(5.0 + 4.5 * bool(others), 4.5), layout="constrained")
    axes = figure.subplots(1, 1 + bool(others), squeeze=False)[0]

    paired = axes[0]
    x = np.arange(len(models))
    named = [g for g in dict.fromkeys(row.group for row in comparison.sessions) if g is not None]
    colors: dict[str | None, str] = {group: f"C{i}" for i, group in enumerate(named)}
    colors[None] = "0.55"
    labelled: set[str | None] = set()
    for row, values in zip(comparison.sessions, heldout, strict=True):
        label = row.group if row.group not in labelled and row.group is not None else None
        labelled.add(row.group)
        paired.plot(
            x,
            values,
            color=colors[row.group],
            linewidth=0.8,
            alpha=0.6,
            marker="o",
            ms=3,
            label=label,
        )
    paired.plot(x, heldout.mean(axis=0), color="black", linewidth=2.5, marker="o", label="mean")
    paired.set_xticks(x, models, rotation=15 if max(map(len, models)) > 12 else 0)
    paired.set_xlim(-0.3, len(models) - 0.7)
    paired.set_ylabel("val+test R²")
    paired.set_title(f"held-out R² per session ({len(comparison.sessions)})")
    paired.legend(frameon=False, fontsize="small")

    if others:
        scatter = axes[1]
        base = heldout[:, models.index(comparison.baseline)]
        for i, model in enumerate(others):
            scatter.scatter(base, heldout[:, models.index(model)], s=18, color=f"C{i}", label=model)
        low, high = float(heldout.min()), float(heldout.max())
        pad = 0.05 * max(high - low, 1e-3)
        diagonal = [low - pad, high + pad]
        scatter.plot(diagonal, diagonal, color="0.5", linewidth=1, linestyle="--")
        scatter.set_xlabel(f"{comparison.baseline} val+test R²")
        scatter.set_ylabel("model val+test R²")
        scatter.set_aspect("equal", adjustable="datalim")
        scatter.set_title("per session vs baseline")
        scatter.legend(frameon=False, fontsize="small")

    with atomic_path(path) as tmp:
        # The temporary name ends in .tmp, so the format cannot come from the suffix.
        figure.savefig(tmp, format="png", dpi=100)
    return path


def _group_of(groups: Mapping[str, Sequence[str]] | None, sessions: list[str]) -> dict[str, str]:
    """session -> group, checking that groups are disjoint and name decoded sessions."""
    if not groups:
        return {}
    if ALL_SESSIONS in groups:
        raise ConfigError(f"{ALL_SESSIONS!r} is reserved for all sessions; rename that group")
    known = set(sessions)
    group_of: dict[str, str] = {}
    for group, members in groups.items():
        for session in members:
            if session not in known:
                raise DataError(
                    f"group {group!r} names session {session!r}, which was not decoded; the "
                    f"sessions are: {', '.join(sessions)}"
                )
            if session in group_of:
                raise ConfigError(
                    f"session {session!r} is in groups {group_of[session]!r} and {group!r}; "
                    "put it in one"
                )
            group_of[session] = group
    return group_of


def _summarise(
    group: str, model: str, rows: list[SessionComparison], baseline: str
) -> ModelSummary:
    if not rows:
        raise DataError(f"group {group!r} holds no sessions; give it at least one")
    heldout = np.array([row.heldout_r2[model] for row in rows])
    train = np.array([row.train_r2[model] for row in rows])
    delta = None if model == baseline else np.array([row.delta[model] for row in rows])
    return ModelSummary(
        group=group,
        model=model,
        n_sessions=len(rows),
        heldout_mean=float(heldout.mean()),
        heldout_min=float(heldout.min()),
        heldout_max=float(heldout.max()),
        train_mean=float(train.mean()),
        delta_mean=None if delta is None else float(delta.mean()),
        delta_min=None if delta is None else float(delta.min()),
        delta_max=None if delta is None else float(delta.max()),
        wins=None if delta is None else int((delta > 0).sum()),
    )
