"""Multi-session spike teacher of spike → LFP distillation: a masked autoencoder (MAE).

Spike counts (B, T, U) become T·P tokens (count embedding of S = 64 units per patch plus a
per-session space embedding, distillation §3). Training (distillation §6, [repro]): a random
60 % of the (time, patch) tokens are hidden; the encoder sees only the visible tokens; mask
tokens (a learned vector plus their space embedding) are re-inserted at their positions, a
linear map takes every token to the predictor width, a small transformer predictor runs
over all tokens and a linear head gives one log-rate per channel of each patch. The loss
(training/teacher_objective.py) is the Poisson NLL of the hidden, non-padded entries.

For distillation the encoder sees the full window and its output, pooled per time step, is
the teacher representation (B, T, d) (distillation §6 last bullet, [inferred]).

`context_steps` (ours; 0 = the paper's whole window) makes the teacher a model of windows of
that many time steps: training crops a random window of that length from each segment
(training/teacher_objective.py) and the representation of a longer window is computed over
consecutive windows of that length, the last one aligned to the window's end. A teacher
trained on 1 s crops and applied to 5 s windows attends over five times more tokens than it
ever saw, which on synthetic-reach cost 0.04–0.12 of velocity R² (docs/distillation.md).

The mask vector is the tokenizer's (`TokenizerConfig.mask_token`): the tokenizer already
replaces a hidden token's value embedding by it and adds the space embedding, which is the
re-inserted token. It lives at encoder width and goes through the same linear map to the
predictor width as the encoder outputs, the same function class as a predictor-width mask
vector. It is used by every masked (training) forward, so DDP sees a gradient for every
parameter; the predictor, its input map and the rate head are used only by masked forwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuralcli.models.layers.tokenizer import (
    Patches,
    PatchTokenizer,
    TokenizerConfig,
    pool_time_steps,
)
from neuralcli.models.lfp_encoder import (
    SessionVocabulary,
    build_transformer,
    check_common,
    check_heads,
    check_positive_ints,
    check_steps,
    decay_groups,
    eval_mode,
    freeze_except_sessions,
    load_session_model,
)


@dataclass
class SpikeTeacherConfig:
    """Sizes of the teacher. Defaults: distillation §6 and §11 ([repro] patch 64, d 256,
    10 layers, predictor 4 layers at d 192; [code] the rest)."""

    patch_size: int = 64
    max_count: int = 5
    d_model: int = 256
    num_layers: int = 10
    num_heads: int = 8
    predictor_d_model: int = 192
    predictor_layers: int = 4
    predictor_heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    activation: str = "gelu"
    embedding_std: float = 1.0
    max_positions: int = 1024
    context_steps: int = 0  # train and encode windows of this many steps; 0 = whole windows

    def __post_init__(self) -> None:
        check_positive_ints(
            self,
            (
                "patch_size",
                "max_count",
                "d_model",
                "num_layers",
                "num_heads",
                "predictor_d_model",
                "predictor_layers",
                "predictor_heads",
                "max_positions",
            ),
        )
        if self.d_model % self.patch_size:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by patch_size ({self.patch_size}): "
                "each unit gets d_model / patch_size count-embedding dimensions"
            )
        check_positive_ints(self, ("context_steps",), minimum=0)  # 0 = whole windows
        check_heads(self.d_model, self.num_heads, "d_model", "num_heads")
        check_heads(
            self.predictor_d_model, self.predictor_heads, "predictor_d_model", "predictor_heads"
        )
        check_common(self)


class TeacherOutput(NamedTuple):
    log_rates: Tensor | None  # (B, T*P, S) log-rate per channel of each token (masked forward)
    latents: Tensor | None  # (B, T, d) encoder output pooled per time step (unmasked forward)
    token_valid: Tensor | None  # (B, T*P) bool, False for padding patches; None = all valid


class SpikeTeacher(SessionVocabulary, nn.Module):
    """MAE spike model: counts (B, T, U) -> log-rates of hidden tokens, or latents (B, T, d).

    `sessions` maps session name -> unit count, in vocabulary order.
    """

    kind = "spike-teacher"

    def __init__(self, *, config: SpikeTeacherConfig, sessions: Mapping[str, int]) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = PatchTokenizer(
            config=TokenizerConfig(
                mode="spikes",
                d_model=config.d_model,
                patch_size=config.patch_size,
                max_count=config.max_count,
                dropout=config.dropout,
                embedding_std=config.embedding_std,
                mask_token=True,
            ),
            sessions=sessions,
        )
        self.encoder = build_transformer(
            config, d_model=config.d_model, num_layers=config.num_layers, num_heads=config.num_heads
        )
        self.predictor_in = nn.Linear(config.d_model, config.predictor_d_model)
        self.predictor = build_transformer(
            config,
            d_model=config.predictor_d_model,
            num_layers=config.predictor_layers,
            num_heads=config.predictor_heads,
        )
        self.rate_head = nn.Linear(config.predictor_d_model, config.patch_size)

    def forward(
        self,
        spikes: Tensor,
        session: Tensor,
        n_units: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> TeacherOutput:
        """spikes (B, T, U) int64 counts, U may be the padded batch maximum; session (B,)
        int64 vocabulary indices; n_units (B,) true counts (None = all U real); mask
        (B, T*P) bool, True = hidden, or None for the full-window representation.

        With a mask every item needs at least one visible valid token; the output then
        depends only on the visible tokens' counts.
        """
        if mask is None:
            return self._represent(spikes, session, n_units)
        check_steps(spikes.shape[1], self.config.max_positions)

        batch, steps, units = spikes.shape
        expected = (batch, steps * self.tokenizer.n_patches(units))
        if tuple(mask.shape) != expected:
            raise ValueError(f"mask must have shape (B, T*P) = {expected}, got {tuple(mask.shape)}")
        mask = mask.to(spikes.device)
        tokens = self.tokenizer(spikes, session, n_units, mask=mask)  # (B, N, d)
        visible = ~mask if tokens.valid is None else tokens.valid & ~mask  # (B, N)
        index, slot_valid = visible_slots(visible)  # (B, V) each
        d = tokens.values.shape[-1]
        gather_index = index[:, :, None].expand(-1, -1, d)  # (B, V, d)
        x_visible = tokens.values.gather(1, gather_index)  # (B, V, d)
        h = self.encoder(x_visible, tokens.positions[index], slot_valid)  # (B, V, d)
        # Padding slots point at hidden tokens: write those tokens' own values back.
        h = torch.where(slot_valid[:, :, None], h.to(x_visible.dtype), x_visible)  # (B, V, d)
        full = tokens.values.scatter(1, gather_index, h)  # (B, N, d) MAE re-insertion
        g = self.predictor(self.predictor_in(full), tokens.positions, tokens.valid)  # (B, N, d')
        log_rates = self.rate_head(g)  # (B, N, S)
        return TeacherOutput(log_rates=log_rates, latents=None, token_valid=tokens.valid)

    def _represent(self, spikes: Tensor, session: Tensor, n_units: Tensor | None) -> TeacherOutput:
        """Unmasked forward: latents (B, T, d), over windows of context_steps when set."""
        steps, context = spikes.shape[1], self.config.context_steps
        if context == 0 or steps <= context:
            return self._represent_window(spikes, session, n_units)
        batch, units = spikes.shape[0], spikes.shape[2]
        whole = steps // context  # windows that tile the start of the segment
        tiled = spikes[:, : whole * context].reshape(batch * whole, context, units)
        out = self._represent_window(
            tiled,
            session.repeat_interleave(whole),
            None if n_units is None else n_units.repeat_interleave(whole),
        )
        latents = [out.latents.reshape(batch, whole * context, -1)]  # (B, whole·ctx, d)
        rest = steps - whole * context
        if rest:  # the last window ends with the segment; keep its new steps only
            tail = self._represent_window(spikes[:, -context:], session, n_units)
            latents.append(tail.latents[:, -rest:])
        valid = None
        if out.token_valid is not None:
            per_step = out.token_valid.reshape(batch, whole * context, -1)[:, :1]  # (B, 1, P)
            valid = per_step.expand(batch, steps, per_step.shape[-1]).reshape(batch, -1)
        return TeacherOutput(log_rates=None, latents=torch.cat(latents, dim=1), token_valid=valid)

    def _represent_window(
        self, spikes: Tensor, session: Tensor, n_units: Tensor | None
    ) -> TeacherOutput:
        check_steps(spikes.shape[1], self.config.max_positions)
        tokens = self.tokenizer(spikes, session, n_units)  # (B, T*P, d)
        h = self.encoder(tokens.values, tokens.positions, tokens.valid)  # (B, T*P, d)
        latents = pool_time_steps(h, tokens.n_steps, tokens.valid)  # (B, T, d)
        return TeacherOutput(log_rates=None, latents=latents, token_valid=tokens.valid)

    @torch.no_grad()
    def encode(self, spikes: Tensor, session: Tensor, n_units: Tensor | None = None) -> Tensor:
        """Teacher representation (B, T, d) of the full (unmasked) window, in eval mode."""
        with eval_mode(self):
            return self(spikes, session, n_units).latents

    def patch_targets(self, spikes: Tensor, n_units: Tensor | None = None) -> Patches:
        """Poisson targets in token layout: values (B, T*P, S) float32 counts (0 at padding)
        and entry_valid (B, T*P, S).

        Targets are the raw counts; only the model's input is clipped to max_count.
        """
        patches = self.tokenizer.patchify(spikes, n_units)  # for entry_valid
        batch, steps, units = spikes.shape
        width = self.tokenizer.n_patches(units) * self.config.patch_size
        counts = F.pad(spikes.float(), (0, width - units))  # (B, T, P*S)
        counts = counts.reshape(patches.values.shape).masked_fill(~patches.entry_valid, 0.0)
        return Patches(values=counts, entry_valid=patches.entry_valid)  # (B, T*P, S)

    def add_session(self, name: str, n_units: int) -> int:
        """Add a session with new space-embedding rows; returns its vocabulary index.
        The embedding becomes a new Parameter: build the optimizer afterwards."""
        return self.tokenizer.add_session(name, n_units)

    def freeze_except_sessions(self, names: Iterable[str]) -> None:
        """Train only the space-embedding rows of `names` (fine-tuning new sessions)."""
        freeze_except_sessions(self, self.tokenizer, names)

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: matrices decayed; biases, norms, mask vector, embeddings not."""
        return decay_groups(self, weight_decay)

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, *, device: str = "cpu") -> SpikeTeacher:
        """Rebuild from run_dir/model.{json,safetensors}; RunDirError if missing or wrong."""
        return load_session_model(cls, SpikeTeacherConfig, run_dir, device=device)


def visible_slots(visible: Tensor) -> tuple[Tensor, Tensor]:
    """Indices of each item's visible tokens, packed to the left in token order.

    visible (B, N) bool -> index (B, V) int64 and slot_valid (B, V) bool, V = the largest
    visible count; slots past an item's count are padding (they index hidden tokens).
    ValueError if an item has no visible token.
    """
    counts = visible.sum(dim=1)  # (B,)
    if bool((counts == 0).any()):
        raise ValueError("every item needs at least one visible token; lower the mask ratio")
    width = int(counts.max())
    # A stable sort on "hidden" puts the visible tokens first, in their original order.
    index = torch.argsort((~visible).to(torch.uint8), dim=1, stable=True)[:, :width]  # (B, V)
    slot_valid = torch.arange(width, device=visible.device) < counts[:, None]  # (B, V)
    return index, slot_valid
