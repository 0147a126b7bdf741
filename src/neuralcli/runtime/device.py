"""Device and precision resolution, and the runtime settings every pipeline receives."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from neuralcli.errors import DeviceError
from neuralcli.runtime.distributed import DistributedInfo, distributed_info, init_process_group

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(spec: str = "auto", *, local_rank: int = 0) -> torch.device:
    """Turn `auto|cpu|cuda|cuda:N|mps` into a usable torch.device, or raise DeviceError.

    Under torchrun, `auto` and `cuda` pick the GPU of this process's local rank.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise DeviceError(
                "--device mps: MPS is not available on this machine; use --device cpu"
            )
        return torch.device("mps")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {spec}: CUDA is not available on this machine "
                f"(torch {torch.__version__}); use --device cpu or auto"
            )
        if spec == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        index_text = spec.split(":", 1)[1]
        if not index_text.isdigit():
            raise DeviceError(f"--device {spec}: expected cuda:N with N a GPU index")
        index = int(index_text)
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) are visible"
            )
        return torch.device("cuda", index)
    raise DeviceError(f"--device {spec!r}: unknown device; use auto, cpu, cuda, cuda:N or mps")


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu"


def resolve_precision(spec: str, device: torch.device) -> str:
    """`auto` is bf16 autocast on CUDA when supported, else fp32; returns fp32|bf16|fp16."""
    spec = (spec or "auto").strip().lower()
    if spec not in PRECISIONS:
        raise DeviceError(
            f"--precision {spec!r}: unknown precision; use one of {', '.join(PRECISIONS)}"
        )
    if spec == "auto":
        return "bf16" if device.type == "cuda" and bf16_supported(device) else "fp32"
    if spec == "fp16" and device.type == "cpu":
        raise DeviceError("--precision fp16: float16 autocast needs a GPU; use bf16 or fp32 on CPU")
    if spec == "bf16" and not bf16_supported(device):
        raise DeviceError(f"--precision bf16: {device} does not support bfloat16; use fp32 or fp16")
    return spec


@dataclass(frozen=True)
class Runtime:
    """Where and how tensors are computed; passed to every pipeline."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    compile: bool = False
    seed: int = 42
    deterministic: bool = False
    dist: DistributedInfo = field(default_factory=DistributedInfo)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return _DTYPES.get(self.precision)

    @property
    def uses_grad_scaler(self) -> bool:
        return self.precision == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager:
        """One autocast context for forward passes (a null context in fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def describe(self) -> dict:
        return {
            "device": str(self.device),
            "precision": self.precision,
            "compile": self.compile,
            "seed": self.seed,
            "deterministic": self.deterministic,
            "world_size": self.dist.world_size,
        }


def resolve_runtime(
    *,
    device: str = "auto",
    precision: str = "auto",
    compile: bool = False,
    seed: int = 42,
    deterministic: bool = False,
) -> Runtime:
    """Resolve options into a Runtime; under torchrun this also joins the process group."""
    dist = distributed_info()
    resolved_device = resolve_device(device, local_rank=dist.local_rank)
    if resolved_device.type == "cuda":
        torch.cuda.set_device(resolved_device)
    init_process_group(dist, resolved_device)
    return Runtime(
        device=resolved_device,
        precision=resolve_precision(precision, resolved_device),
        compile=compile,
        seed=seed,
        deterministic=deterministic,
        dist=dist,
    )
