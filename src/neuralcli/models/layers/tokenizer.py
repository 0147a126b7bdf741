"""Patch tokenizer of the spike → LFP distillation models (distillation §3, §5, §13).

A window x (B, T, C) of LFP samples or spike counts becomes T·P tokens of width d: the
channel axis is padded to a multiple of S and cut into P = ceil(C / S) patches of S channels,
flattened time-major (token index t·P + p, position id t, distillation §3.2). Each token gets
a value embedding (spike-count lookup, a causal Conv1d over the flattened token axis, or a
small MLP; §3.3) plus a per-session space embedding indexed by patch id (§3.4).

All sessions' space embeddings are rows of one `nn.Embedding` with per-session row offsets,
so every parameter receives a gradient in every step (DDP) and state-dict keys never depend
on session names. With exactly one session in the vocabulary every input uses its table
whatever its session index (§3.5, §13.4).

Batches may mix sessions with different channel counts: x is zero-padded to the batch
maximum C and `n_channels` (B,) gives each item's true count; patches of an item beyond its
own ceil(n / S) are invalid tokens (`Tokens.valid`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TOKENIZER_MODES = ("spikes", "lfp-conv", "lfp-mlp")


@dataclass
class TokenizerConfig:
    mode: str = "lfp-conv"
    d_model: int = 256
    patch_size: int = 32  # S channels per token
    max_count: int = 5  # spikes: counts clipped to 0..max_count; padding index max_count + 1
    conv_kernel: int = 5  # lfp-conv
    conv_dilation: int = 2  # lfp-conv
    mlp_hidden: int = 512  # lfp-mlp
    dropout: float = 0.1  # lfp-mlp: on the input and after the hidden layer
    embedding_std: float = 1.0  # N(0, std) init of count and space embeddings
    mask_token: bool = (
        False  # learned (d,) vector that replaces the value embedding of masked tokens
    )


class Patches(NamedTuple):
    values: Tensor  # (B, T*P, S) channel values per token (padding: 0 LFP, max_count+1 spikes)
    entry_valid: Tensor  # (B, T*P, S) bool: True where the entry is a real channel of that item


class Tokens(NamedTuple):
    values: Tensor  # (B, T*P, d) value embedding + space embedding; token index = t*P + p
    positions: Tensor  # (T*P,) int64 time step t of each token
    valid: Tensor | None  # (B, T*P) bool: False for patches with no real channel; None = all valid
    n_steps: int  # T
    n_patches: int  # P = ceil(C_batch / S)


class CausalConvEmbedding(nn.Module):
    """Conv1d(S → d, kernel k, dilation δ) along the flattened token axis, left-padded by
    (k − 1)·δ so token n sees only tokens n, n − δ, …, n − (k − 1)·δ (distillation §3.3).

    Channels-last in and out: (B, N, S) -> (B, N, d). The weight keeps Conv1d's (d, S, k)
    layout (released checkpoint key `tokenizer.embedder.conv.weight`, §12); the product runs
    as one (B·N, k·S) x (k·S, d) matmul over a strided window view, which yields the
    channels-last output the transformer wants without a transpose copy.
    """

    def __init__(self, *, patch_size: int, d_model: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.dilation = dilation
        self.conv = nn.Conv1d(patch_size, d_model, kernel, dilation=dilation)

    def forward(self, values: Tensor) -> Tensor:
        batch, length, size = values.shape
        reach = (self.kernel - 1) * self.dilation
        padded = F.pad(values, (0, 0, reach, 0))  # (B, N + reach, S)
        # window[b, n, j, s] = padded[b, n + j·δ, s] = values[b, n − (k − 1 − j)·δ, s]
        stride = padded.stride()
        windows = padded.as_strided(
            (batch, length, self.kernel, size),
            (stride[0], stride[1], self.dilation * stride[1], stride[2]),
        )  # (B, N, k, S)
        weight = self.conv.weight.permute(0, 2, 1).reshape(self.conv.out_channels, -1)  # (d, k·S)
        return F.linear(windows.reshape(batch, length, -1), weight, self.conv.bias)  # (B, N, d)


class MlpEmbedding(nn.Module):
    """Linear(S → hidden) → tanh → Linear(hidden → d), dropout on the input and after the
    hidden layer (distillation §3.3). (B, N, S) -> (B, N, d)."""

    def __init__(self, *, patch_size: int, d_model: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(patch_size, hidden),
            nn.Tanh(),
            nn.Dropout(dropout),
        )
        self.final_layer = nn.Linear(hidden, d_model)

    def forward(self, values: Tensor) -> Tensor:
        return self.final_layer(self.layers(values))


class CountEmbedding(nn.Module):
    """Embedding(max_count + 2, d / S) looked up per channel and concatenated over the S
    channels of a token (distillation §3.3). (B, N, S) int64 -> (B, N, d)."""

    def __init__(self, *, patch_size: int, d_model: int, max_count: int) -> None:
        super().__init__()
        if d_model % patch_size != 0:
            raise ValueError(
                f"spike tokenizer needs d_model divisible by patch_size; got d_model={d_model}, "
                f"patch_size={patch_size}"
            )
        self.embedding = nn.Embedding(
            max_count + 2, d_model // patch_size, padding_idx=max_count + 1
        )

    def forward(self, values: Tensor) -> Tensor:
        batch, length, _ = values.shape
        return self.embedding(values).reshape(batch, length, -1)  # (B, N, S·d/S)


class PatchTokenizer(nn.Module):
    """Patches, value embedding and per-session space embedding (distillation §3).

    `sessions` maps session name -> channel (or unit) count, in vocabulary order.
    """

    def __init__(self, *, config: TokenizerConfig, sessions: Mapping[str, int]) -> None:
        super().__init__()
        if config.mode not in TOKENIZER_MODES:
            raise ValueError(
                f"tokenizer mode must be one of {TOKENIZER_MODES}, got {config.mode!r}"
            )
        if not sessions:
            raise ValueError("the tokenizer needs at least one session")
        self.config = config
        d, size = config.d_model, config.patch_size
        if config.mode == "spikes":
            self.embedder: nn.Module = CountEmbedding(
                patch_size=size, d_model=d, max_count=config.max_count
            )
        elif config.mode == "lfp-conv":
            self.embedder = CausalConvEmbedding(
                patch_size=size, d_model=d, kernel=config.conv_kernel, dilation=config.conv_dilation
            )
        else:
            self.embedder = MlpEmbedding(
                patch_size=size, d_model=d, hidden=config.mlp_hidden, dropout=config.dropout
            )
        self.mask_vector = nn.Parameter(torch.zeros(d)) if config.mask_token else None
        self._sessions: list[str] = []
        self._channel_counts: list[int] = []
        self._offsets: list[int] = []
        total = 0
        for name, count in sessions.items():
            self._check_new_session(name, count)
            self._sessions.append(name)
            self._channel_counts.append(int(count))
            self._offsets.append(total)
            total += self.n_patches(int(count))
        self.space_embedding = nn.Embedding(total, d)
        self.register_buffer("row_offsets", torch.tensor(self._offsets), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = self.config.embedding_std
        # Released code: N(0, std) over the whole table, padding row included (distillation §3)
        nn.init.normal_(self.space_embedding.weight, std=std)
        if isinstance(self.embedder, CountEmbedding):
            nn.init.normal_(self.embedder.embedding.weight, std=std)

    @property
    def sessions(self) -> list[str]:
        return list(self._sessions)

    @property
    def channel_counts(self) -> list[int]:
        return list(self._channel_counts)

    def n_patches(self, n_channels: int) -> int:
        return math.ceil(n_channels / self.config.patch_size)

    def session_index(self, name: str) -> int:
        try:
            return self._sessions.index(name)
        except ValueError:
            raise ValueError(
                f"session {name!r} is not in the tokenizer's vocabulary; known sessions: "
                f"{', '.join(self._sessions)}"
            ) from None

    def _check_new_session(self, name: str, count: int) -> None:
        if name in self._sessions:
            raise ValueError(f"session {name!r} is already in the tokenizer's vocabulary")
        if int(count) < 1:
            raise ValueError(f"session {name!r} needs at least one channel, got {count}")

    def add_session(self, name: str, n_channels: int) -> int:
        """Append a session with new space-embedding rows N(0, std); returns its index.

        Existing rows keep their values; the embedding is a new Parameter, so build the
        optimizer after adding sessions.
        """
        self._check_new_session(name, n_channels)
        old = self.space_embedding.weight
        rows = torch.empty(self.n_patches(n_channels), old.shape[1], device=old.device)
        nn.init.normal_(rows, std=self.config.embedding_std)
        grown = nn.Embedding(old.shape[0] + rows.shape[0], old.shape[1], device=old.device)
        with torch.no_grad():
            grown.weight.copy_(torch.cat([old.detach(), rows.to(old.dtype)]))
        grown.weight.requires_grad_(old.requires_grad)
        self.space_embedding = grown
        self._offsets.append(old.shape[0])
        self._sessions.append(name)
        self._channel_counts.append(int(n_channels))
        self.row_offsets = torch.tensor(self._offsets, device=old.device)
        return len(self._sessions) - 1

    def _pad_value(self) -> int:
        return self.config.max_count + 1 if self.config.mode == "spikes" else 0

    def patchify(self, x: Tensor, n_channels: Tensor | None = None) -> Patches:
        """x (B, T, C) -> values (B, T·P, S) and entry_valid (B, T·P, S), token index t·P + p.

        Channels at or beyond an item's `n_channels` and the pad up to P·S get the pad value
        (0 for LFP, max_count + 1 for spikes); spike counts are clamped to 0..max_count.
        """
        batch, steps, channels = x.shape
        size = self.config.patch_size
        patches = self.n_patches(channels)
        width = patches * size
        channel = torch.arange(width, device=x.device)
        if n_channels is None:
            entry_valid = (channel < channels).expand(batch, width)  # (B, P·S)
        else:
            entry_valid = channel < n_channels.to(x.device)[:, None]  # (B, P·S)
        if self.config.mode == "spikes":
            values = x.long().clamp(0, self.config.max_count)  # distillation §3.3
        else:
            values = x
        values = F.pad(values, (0, width - channels), value=self._pad_value())  # (B, T, P·S)
        if n_channels is not None:
            values = values.masked_fill(~entry_valid[:, None, :], self._pad_value())
        values = values.reshape(batch, steps * patches, size)  # (B, T·P, S)
        entry_valid = entry_valid[:, None, :].expand(batch, steps, width)
        return Patches(values, entry_valid.reshape(batch, steps * patches, size))

    def forward(
        self,
        x: Tensor,
        session: Tensor,
        n_channels: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tokens:
        """x (B, T, C) float LFP or integer counts, C may be the padded batch maximum;
        session (B,) int64 vocabulary indices (ignored when the tokenizer holds exactly one
        session: every item uses that table, distillation §3.5); n_channels (B,) true counts
        (None = all C real); mask (B, T·P) bool, True = hidden: the token's raw input values
        are zeroed before the value embedding (so the causal conv cannot leak them into
        neighbours) and its value embedding is replaced by the mask vector
        (config.mask_token must be True). ValueError when an item has more channels than
        its session's table covers.
        """
        batch, steps, channels = x.shape
        patches = self.n_patches(channels)
        size = self.config.patch_size
        session = self._effective_session(session, batch, x.device)  # (B,)
        table_patches = self._table_patches(session)  # (B,)
        if n_channels is None:
            item_patches = torch.full_like(table_patches, patches)
        else:
            n_channels = n_channels.to(device=x.device, dtype=torch.long)
            item_patches = (n_channels + size - 1) // size  # (B,)
        self._check_coverage(item_patches, table_patches, session, n_channels, channels)

        values = self.patchify(x, n_channels).values  # (B, N, S)
        if mask is not None:
            if self.mask_vector is None:
                raise ValueError("a token mask needs TokenizerConfig.mask_token=True")
            mask = mask.to(x.device)
            values = values.masked_fill(mask[:, :, None], 0)
        if self.config.mode != "spikes":
            values = values.to(self.space_embedding.weight.dtype)
        embedded = self.embedder(values)  # (B, N, d)
        if mask is not None:
            embedded = torch.where(mask[:, :, None], self.mask_vector, embedded)

        patch = torch.arange(patches, device=x.device)
        patch_valid = patch < item_patches[:, None]  # (B, P)
        # invalid patches read their session's row 0: any row works, their tokens are masked
        rows = self.row_offsets[session][:, None] + patch * patch_valid  # (B, P)
        space = self.space_embedding(rows)  # (B, P, d)
        d = embedded.shape[-1]
        # the sum is float32 under autocast too: the residual stream starts here
        tokens = (embedded.view(batch, steps, patches, d) + space[:, None]).view(
            batch, steps * patches, d
        )  # (B, T·P, d), distillation §3.4
        positions = torch.arange(steps, device=x.device).repeat_interleave(patches)  # (T·P,)
        valid = None
        if n_channels is not None and not bool(patch_valid.all()):
            valid = patch_valid[:, None, :].expand(batch, steps, patches).reshape(batch, -1)
        return Tokens(tokens, positions, valid, steps, patches)

    def _effective_session(self, session: Tensor, batch: int, device: torch.device) -> Tensor:
        if len(self._sessions) == 1:
            return torch.zeros(batch, dtype=torch.long, device=device)  # distillation §3.5
        session = session.to(device=device, dtype=torch.long).reshape(batch)
        if bool(((session < 0) | (session >= len(self._sessions))).any()):
            raise ValueError(
                f"session indices must be in 0..{len(self._sessions) - 1} "
                f"(sessions: {', '.join(self._sessions)}); got {session.tolist()}"
            )
        return session

    def _table_patches(self, session: Tensor) -> Tensor:
        counts = torch.tensor(
            [self.n_patches(c) for c in self._channel_counts], device=session.device
        )
        return counts[session]  # (B,)

    def _check_coverage(
        self,
        item_patches: Tensor,
        table_patches: Tensor,
        session: Tensor,
        n_channels: Tensor | None,
        channels: int,
    ) -> None:
        over = item_patches > table_patches
        if not bool(over.any()):
            return
        item = int(over.nonzero()[0, 0])
        name = self._sessions[int(session[item])]
        count = channels if n_channels is None else int(n_channels[item])
        raise ValueError(
            f"batch item {item} has {count} channels but session {name!r} has space embeddings "
            f"for {int(table_patches[item]) * self.config.patch_size} "
            f"({self._channel_counts[int(session[item])]} channels); pass n_channels or add "
            f"the session with its channel count"
        )


def pool_time_steps(
    tokens: Tensor, n_steps: int, valid: Tensor | None = None, *, include_zero: bool = False
) -> Tensor:
    """(B, T·P, d) -> (B, T, d): mean over the valid patch tokens of each time step;
    include_zero=True divides by (P_valid + 1) like the released code (distillation §5)."""
    batch, length, d = tokens.shape
    patches = length // n_steps
    grouped = tokens.view(batch, n_steps, patches, d)  # (B, T, P, d)
    extra = 1 if include_zero else 0
    if valid is None:
        return grouped.sum(dim=2) / (patches + extra)  # (B, T, d)
    weight = valid.view(batch, n_steps, patches, 1).to(tokens.dtype)  # (B, T, P, 1)
    total = (grouped * weight).sum(dim=2)  # (B, T, d)
    return total / (weight.sum(dim=2) + extra).clamp_min(1)
