"""LFP encoder of spike → LFP distillation: patch tokenizer + LLaMA-style transformer.

One architecture serves the multi-session MS-LFP baseline (distillation §7) and the distilled
student (§8): LFP (B, T, C) -> T·P tokens (causal-conv or MLP value embedding plus a
per-session space embedding, §3) -> bidirectional transformer (§4) -> per-token outputs,
pooled per time step to the representation z (B, T, d) (§5, true mean over valid patches).

Our choices where the release is silent:
- the reconstruction readout is a Linear(d -> S) on each token's output, predicting the S
  channel values of that token's patch, instead of the reproduction's linear readout of the
  pooled z_t to all C channels (§8): it works for any channel count and any session, so one
  readout serves a multi-session model;
- masked tokens (BERT style: the tokenizer zeroes their raw values and substitutes a learned
  mask vector) stay in the sequence, because the causal conv embedding mixes neighbouring
  tokens (§13.1);
- the student starts as a single-table copy of a multi-session model (`single_session`),
  which also gives the "use session A's table for every input" mode of §3.5 and §10.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import torch
from torch import Tensor, nn

from neuralcli.errors import RunDirError
from neuralcli.models.layers.tokenizer import (
    Patches,
    PatchTokenizer,
    TokenizerConfig,
    pool_time_steps,
)
from neuralcli.models.layers.transformer import TransformerConfig, TransformerEncoder
from neuralcli.models.pretrained import build_model_config
from neuralcli.runtime.checkpoint import load_state_dict_checked, load_weights, read_model_meta

VALUE_EMBEDDINGS = ("conv", "mlp")
ACTIVATIONS = ("gelu", "silu")
M = TypeVar("M", bound=nn.Module)


@dataclass
class LfpEncoderConfig:
    """Sizes of the LFP encoder. Defaults: distillation §11 ([repro] patch 32, conv kernel 5,
    dilation 2, d 256, 10 layers, 8 heads; [code] the rest)."""

    patch_size: int = 32
    value_embedding: str = "conv"  # "conv" (causal Conv1d over tokens) | "mlp"
    conv_kernel: int = 5
    conv_dilation: int = 2
    mlp_hidden: int = 512
    d_model: int = 256
    num_layers: int = 10
    num_heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    activation: str = "gelu"
    embedding_std: float = 1.0
    max_positions: int = 1024
    mask_token: bool = True  # learned mask vector for masked reconstruction

    def __post_init__(self) -> None:
        check_positive_ints(
            self,
            (
                "patch_size",
                "conv_kernel",
                "conv_dilation",
                "mlp_hidden",
                "d_model",
                "num_layers",
                "num_heads",
                "max_positions",
            ),
        )
        if self.value_embedding not in VALUE_EMBEDDINGS:
            raise ValueError(
                f"value_embedding must be one of {VALUE_EMBEDDINGS}, got {self.value_embedding!r}"
            )
        check_heads(self.d_model, self.num_heads, "d_model", "num_heads")
        check_common(self)
        if not isinstance(self.mask_token, bool):
            raise ValueError(f"mask_token must be true or false, got {self.mask_token!r}")


class LfpOutput(NamedTuple):
    reconstruction: Tensor  # (B, T*P, S) predicted LFP of each token's channels
    latents: Tensor  # (B, T, d) final-norm token outputs pooled per time step
    token_valid: Tensor | None  # (B, T*P) bool, False for padding patches; None = all valid


class SessionVocabulary:
    """The session vocabulary of a model that owns a PatchTokenizer as `self.tokenizer`."""

    tokenizer: PatchTokenizer

    @property
    def sessions(self) -> list[str]:
        """Session names in vocabulary order."""
        return self.tokenizer.sessions

    @property
    def channel_counts(self) -> list[int]:
        """Channel (or unit) count of each session, vocabulary order."""
        return self.tokenizer.channel_counts

    @property
    def session_counts(self) -> dict[str, int]:
        """Session name -> channel (or unit) count, vocabulary order (model.json's "sessions")."""
        return dict(zip(self.tokenizer.sessions, self.tokenizer.channel_counts, strict=True))


class LfpEncoder(SessionVocabulary, nn.Module):
    """LFP (B, T, C) -> per-token reconstruction (B, T*P, S) and latents (B, T, d).

    `sessions` maps session name -> LFP channel count, in vocabulary order.
    """

    kind = "lfp-encoder"

    def __init__(self, *, config: LfpEncoderConfig, sessions: Mapping[str, int]) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = PatchTokenizer(
            config=TokenizerConfig(
                mode="lfp-conv" if config.value_embedding == "conv" else "lfp-mlp",
                d_model=config.d_model,
                patch_size=config.patch_size,
                conv_kernel=config.conv_kernel,
                conv_dilation=config.conv_dilation,
                mlp_hidden=config.mlp_hidden,
                dropout=config.dropout,
                embedding_std=config.embedding_std,
                mask_token=config.mask_token,
            ),
            sessions=sessions,
        )
        self.encoder = build_transformer(
            config, d_model=config.d_model, num_layers=config.num_layers, num_heads=config.num_heads
        )
        self.readout = nn.Linear(config.d_model, config.patch_size)

    def forward(
        self,
        lfp: Tensor,
        session: Tensor,
        n_channels: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> LfpOutput:
        """lfp (B, T, C) float, C may be the padded batch maximum; session (B,) int64
        vocabulary indices; n_channels (B,) true counts (None = all C real); mask (B, T*P)
        bool, True = hidden (needs config.mask_token)."""
        check_steps(lfp.shape[1], self.config.max_positions)
        tokens = self.tokenizer(lfp, session, n_channels, mask=mask)  # (B, T*P, d)
        h = self.encoder(tokens.values, tokens.positions, tokens.valid)  # (B, T*P, d)
        return LfpOutput(
            reconstruction=self.readout(h),  # (B, T*P, S)
            latents=pool_time_steps(h, tokens.n_steps, tokens.valid),  # (B, T, d)
            token_valid=tokens.valid,
        )

    @torch.no_grad()
    def encode(self, lfp: Tensor, session: Tensor, n_channels: Tensor | None = None) -> Tensor:
        """Representation z (B, T, d) of the full (unmasked) window, in eval mode."""
        with eval_mode(self):
            return self(lfp, session, n_channels).latents

    def patch_targets(self, lfp: Tensor, n_channels: Tensor | None = None) -> Patches:
        """Reconstruction targets in token layout: values (B, T*P, S) (0 at padding) and
        entry_valid (B, T*P, S)."""
        return self.tokenizer.patchify(lfp, n_channels)

    def add_session(self, name: str, n_channels: int) -> int:
        """Add a session with new space-embedding rows; returns its vocabulary index.
        The embedding becomes a new Parameter: build the optimizer afterwards."""
        return self.tokenizer.add_session(name, n_channels)

    def freeze_except_sessions(self, names: Iterable[str]) -> None:
        """Train only the space-embedding rows of `names` (fine-tuning new sessions)."""
        freeze_except_sessions(self, self.tokenizer, names)

    def single_session(self, name: str, *, mask_token: bool | None = None) -> LfpEncoder:
        """A copy holding only `name`'s space-embedding table (distillation §3.5, §8).

        Every input of the copy uses that table whatever its session index. `mask_token`
        keeps (None), drops (False) or adds (True, zero-initialised) the mask vector: a
        student distilled without masking must drop it, or the unused vector would break DDP.
        """
        index = self.tokenizer.session_index(name)
        counts = self.tokenizer.channel_counts
        first = sum(self.tokenizer.n_patches(count) for count in counts[:index])
        rows = slice(first, first + self.tokenizer.n_patches(counts[index]))
        config = self.config if mask_token is None else replace(self.config, mask_token=mask_token)
        weight = self.tokenizer.space_embedding.weight
        copy_model = LfpEncoder(config=config, sessions={name: counts[index]})
        source = self.state_dict()
        target = copy_model.state_dict()
        for key in target:
            if key == "tokenizer.space_embedding.weight":
                target[key] = source[key][rows]
            elif key in source:
                target[key] = source[key]
        copy_model.load_state_dict(target)
        return copy_model.to(device=weight.device, dtype=weight.dtype).train(self.training)

    def parameter_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: matrices decayed; biases, norms, mask vector, embeddings not."""
        return decay_groups(self, weight_decay)

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, *, device: str = "cpu") -> LfpEncoder:
        """Rebuild from run_dir/model.{json,safetensors}; RunDirError if missing or wrong."""
        return load_session_model(cls, LfpEncoderConfig, run_dir, device=device)


# Helpers shared with the spike teacher (models/spike_teacher.py).


def build_transformer(
    config: Any, *, d_model: int, num_layers: int, num_heads: int
) -> TransformerEncoder:
    """A TransformerEncoder of the given width and depth with `config`'s shared settings
    (mlp_ratio, dropout, activation, max_positions)."""
    return TransformerEncoder(
        config=TransformerConfig(
            d_model=d_model,
            num_layers=num_layers,
            num_heads=num_heads,
            mlp_ratio=config.mlp_ratio,
            dropout=config.dropout,
            activation=config.activation,
            max_positions=config.max_positions,
        )
    )


def check_positive_ints(config: Any, names: Iterable[str], *, minimum: int = 1) -> None:
    """Each named field of config is an int (not a bool) >= minimum, else ValueError."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise ValueError(f"{name} must be {kind}, got {value!r}")


def check_heads(d_model: int, heads: int, d_name: str, heads_name: str) -> None:
    """RoPE rotates pairs of head dimensions, so d_model / heads must be an even integer."""
    if d_model % heads or (d_model // heads) % 2:
        raise ValueError(
            f"{d_name} ({d_model}) / {heads_name} ({heads}) must be an even integer (RoPE)"
        )


def check_common(config: Any) -> None:
    """mlp_ratio, dropout, activation and embedding_std of an encoder config."""
    if isinstance(config.mlp_ratio, bool) or not config.mlp_ratio > 0:
        raise ValueError(f"mlp_ratio must be > 0, got {config.mlp_ratio!r}")
    if isinstance(config.dropout, bool) or not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {config.dropout!r}")
    if config.activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {config.activation!r}")
    if isinstance(config.embedding_std, bool) or not config.embedding_std > 0:
        raise ValueError(f"embedding_std must be > 0, got {config.embedding_std!r}")


def check_steps(n_steps: int, max_positions: int) -> None:
    if n_steps > max_positions:
        raise ValueError(
            f"a window of {n_steps} time steps exceeds max_positions={max_positions}; "
            "use shorter segments or a model with a larger max_positions"
        )


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """The module in eval mode inside the block, its previous mode restored after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices and conv kernels only; vectors and embedding tables free."""
    embedded = {id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)}
    params = [p for p in model.parameters() if p.requires_grad]
    free = {id(p) for p in params if p.ndim < 2 or id(p) in embedded}
    return [
        {"params": [p for p in params if id(p) not in free], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in free], "weight_decay": 0.0},
    ]


def freeze_except_sessions(
    model: nn.Module, tokenizer: PatchTokenizer, names: Iterable[str]
) -> None:
    """Freeze every parameter of `model` but the space-embedding rows of `names`.

    The rows live in one table shared with the frozen sessions, so the table keeps
    requires_grad and a gradient hook zeroes the other rows. Adam leaves a parameter entry
    with zero gradient unchanged, but decoupled weight decay would still shrink it: train
    with `parameter_groups` (embedding tables are decay-free there). Call after the last
    `add_session`, which replaces the table.
    """
    indices = [tokenizer.session_index(name) for name in names]
    counts = [tokenizer.n_patches(count) for count in tokenizer.channel_counts]
    weight = tokenizer.space_embedding.weight
    keep = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
    for index in indices:
        first = sum(counts[:index])
        keep[first : first + counts[index]] = 1.0
    model.requires_grad_(False)
    weight.requires_grad_(True)
    weight.register_hook(lambda grad: grad * keep.to(grad.dtype))


def load_session_model(
    model_cls: type[M], config_cls: type, run_dir: str | Path, *, device: str = "cpu"
) -> M:
    """`model_cls(config=..., sessions=...)` with the weights of run_dir, eval mode on `device`.

    The session vocabulary is model.json's top-level "sessions" (name -> channel count, in
    vocabulary order). RunDirError if the run is missing, of another kind, or does not fit.
    """
    meta = read_model_meta(run_dir, expected_kind=model_cls.kind)
    config = build_model_config(config_cls, meta["config"], run_dir)
    sessions = meta.get("sessions")
    if (
        not isinstance(sessions, dict)
        or not sessions
        or not all(
            isinstance(name, str) and isinstance(count, int) and count >= 1
            for name, count in sessions.items()
        )
    ):
        raise RunDirError(
            f"{run_dir}: model.json lacks a 'sessions' mapping of name -> channel count; "
            "retrain that run"
        )
    model = model_cls(config=config, sessions=sessions)
    load_state_dict_checked(model, load_weights(run_dir, device="cpu"), Path(run_dir))
    return model.to(device).eval()
