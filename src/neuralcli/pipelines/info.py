"""`neuralcli info`: versions, devices, precision support and the home directory."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from neuralcli import __version__
from neuralcli.runtime.device import bf16_supported


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def system_info(home: Path) -> dict[str, Any]:
    """A JSON-ready description of this installation and machine."""
    cuda_devices = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            device = torch.device("cuda", index)
            cuda_devices.append(
                {
                    "index": index,
                    "name": props.name,
                    "memory_gib": round(props.total_memory / 2**30, 1),
                    "capability": f"{props.major}.{props.minor}",
                    "bf16": bf16_supported(device),
                }
            )
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    cpu = torch.device("cpu")
    auto_device = "cuda:0" if cuda_devices else ("mps" if mps else "cpu")
    auto_precision = "bf16" if cuda_devices and cuda_devices[0]["bf16"] else "fp32"
    return {
        "neuralcli": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": bool(cuda_devices),
        "cuda_version": torch.version.cuda,
        "cuda_devices": cuda_devices,
        "mps_available": mps,
        "cpu_threads": torch.get_num_threads(),
        "cpu_bf16": bf16_supported(cpu),
        "auto_device": auto_device,
        "auto_precision": auto_precision,
        "precisions": ["fp32", "bf16"] + (["fp16"] if cuda_devices else []),
        "distributed_backends": [
            name
            for name, ok in (
                ("gloo", torch.distributed.is_gloo_available()),
                ("nccl", torch.distributed.is_nccl_available()),
            )
            if ok
        ],
        "home": str(home),
        "home_exists": home.is_dir(),
        "home_bytes": _folder_size(home) if home.is_dir() else 0,
    }
