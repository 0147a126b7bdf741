"""Spike-history observation model of "LDNS + spike history" (LDNS §5).

A per-neuron autoregressive Poisson GLM, no coupling between neurons:

    λ_n(t) = softplus( Σ_{k=1..H} w_{n,k}·s_n(t−H−1+k) + w_{n,H+1}·log r_n(t) + w_{n,H+2} )

with H = 20 history bins, r the rates of the AE (in training) or of diffusion samples (when
sampling), and s the counts clipped at 5. Trained teacher-forced on the true spikes; sampled
autoregressively from zero history with s(t) = min(Poisson(λ(t)), 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from neuralcli.errors import DataError
from neuralcli.models.pretrained import load_pretrained

# Rates below this are treated as this when taking their log: softplus can underflow to 0.
MIN_RATE = 1e-8


@dataclass
class SpikeHistoryConfig:
    """Sizes of the GLM. Defaults: LDNS monkey (LDNS §5)."""

    n_neurons: int = 182
    history_bins: int = 20
    max_count: int = 5
    init: str = "randn"

    def __post_init__(self) -> None:
        for name in ("n_neurons", "history_bins", "max_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.init not in ("randn", "zeros"):
            raise ValueError(f"init must be 'randn' or 'zeros', got {self.init!r}")


def log_rates_of(rates: torch.Tensor) -> torch.Tensor:
    """log r with r floored at MIN_RATE, the GLM's rate input: (B, T, N) -> (B, T, N)."""
    return torch.log(rates.float().clamp_min(MIN_RATE))


class SpikeHistoryGLM(nn.Module):
    """Per-neuron autoregressive Poisson GLM on top of a rate model (LDNS §5).

    `weight` (N, H + 2): columns 0..H−1 weigh s(t−H) .. s(t−1), column H the log rate,
    column H + 1 is the bias.
    """

    kind = "spike-history"

    def __init__(self, *, config: SpikeHistoryConfig) -> None:
        super().__init__()
        self.config = config
        shape = (config.n_neurons, config.history_bins + 2)
        # LDNS §5: W ∈ ℝ^{N×22} drawn from randn; "zeros" starts from a flat GLM instead.
        initial = torch.randn(shape) if config.init == "randn" else torch.zeros(shape)
        self.weight = nn.Parameter(initial)

    @property
    def history_weight(self) -> torch.Tensor:
        """(N, H): weight of s(t−H+j) at column j."""
        return self.weight[:, : self.config.history_bins]

    def _check(self, name: str, tensor: torch.Tensor) -> None:
        if tensor.ndim != 3 or tensor.shape[-1] != self.config.n_neurons:
            raise DataError(
                f"{name} must be (B, T, {self.config.n_neurons}) (trials, bins, neurons), got "
                f"shape {tuple(tensor.shape)}"
            )

    def forward(self, spikes: torch.Tensor, log_rates: torch.Tensor) -> torch.Tensor:
        """Teacher-forced rates λ(t) for t = H..T−1 (LDNS §5).

        spikes: (B, T, N) true counts (clipped at max_count here); log_rates: (B, T, N) log of
        the underlying rate model's rates. Returns (B, T − H, N) rates, positive.
        """
        self._check("spikes", spikes)
        self._check("log_rates", log_rates)
        history = self.config.history_bins
        if spikes.shape[:2] != log_rates.shape[:2] or spikes.shape[1] <= history:
            raise DataError(
                f"spikes {tuple(spikes.shape)} and log_rates {tuple(log_rates.shape)} must share "
                f"(B, T) with T > {history} history bins"
            )
        clipped = spikes.float().clamp(max=self.config.max_count)  # (B, T, N)
        # A depthwise convolution over time: out[j] = Σ_m w[m]·s(j+m) with the input cut at
        # T−1, so output j = t − H sums w_{n,k}·s(t−H−1+k) for k = 1..H (cross-correlation:
        # no kernel flip needed).
        inputs = clipped[:, :-1].transpose(1, 2)  # (B, N, T − 1)
        kernel = self.history_weight.unsqueeze(1)  # (N, 1, H)
        drive = F.conv1d(inputs, kernel, groups=self.config.n_neurons)  # (B, N, T − H)
        drive = drive.transpose(1, 2)  # (B, T − H, N)
        rate_weight = self.weight[:, history]  # (N,)
        bias = self.weight[:, history + 1]  # (N,)
        return F.softplus(drive + rate_weight * log_rates[:, history:].float() + bias)

    @torch.no_grad()
    def sample(
        self, log_rates: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Autoregressive counts from zero history: s(t) = min(Poisson(λ(t)), max_count).

        log_rates: (B, T, N), e.g. `log_rates_of` diffusion-sampled rates. Returns (B, T, N)
        int64 counts. `generator` must live on log_rates' device; it makes the draw
        reproducible.
        """
        self._check("log_rates", log_rates)
        batch, length, n_neurons = log_rates.shape
        history = self.config.history_bins
        weight = self.weight.detach().float()
        history_weight = weight[:, :history].t()  # (H, N)
        # The static part of the drive is computed for all bins at once.
        static = weight[:, history] * log_rates.float() + weight[:, history + 1]  # (B, T, N)
        # Bins −H..−1 are the zero history; bin t of the output sits at row t + H.
        trains = log_rates.new_zeros((batch, length + history, n_neurons), dtype=torch.float32)
        for t in range(length):
            window = trains[:, t : t + history]  # (B, H, N): s(t−H) .. s(t−1)
            drive = (window * history_weight).sum(dim=1) + static[:, t]  # (B, N)
            draw = torch.poisson(F.softplus(drive), generator=generator)  # (B, N)
            trains[:, t + history] = draw.clamp_(max=self.config.max_count)
        return trains[:, history:].to(torch.int64)

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, *, device: str = "cpu") -> SpikeHistoryGLM:
        """Rebuild from run_dir/model.{json,safetensors}; RunDirError if missing or wrong."""
        return load_pretrained(cls, SpikeHistoryConfig, run_dir, device=device)
