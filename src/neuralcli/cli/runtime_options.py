"""Runtime options accepted globally (`neuralcli --device cpu ...`) and on heavy commands
(`neuralcli train ae --device cpu`); a command's own option wins."""

from __future__ import annotations

from typing import Annotated

import typer

from neuralcli.cli.common import options
from neuralcli.runtime.device import Runtime, resolve_runtime

DeviceOption = Annotated[
    str | None, typer.Option("--device", help="auto|cpu|cuda|cuda:N|mps (default: global --device)")
]
PrecisionOption = Annotated[
    str | None,
    typer.Option("--precision", help="auto|fp32|bf16|fp16 (default: global --precision)"),
]
SeedOption = Annotated[
    int | None, typer.Option("--seed", help="Random seed (default: global --seed)")
]
CompileOption = Annotated[
    bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model")
]


def make_runtime(
    device: str | None = None,
    precision: str | None = None,
    seed: int | None = None,
    compile: bool | None = None,
) -> Runtime:
    opts = options()
    return resolve_runtime(
        device=device if device is not None else opts.device,
        precision=precision if precision is not None else opts.precision,
        compile=compile if compile is not None else opts.compile,
        seed=seed if seed is not None else opts.seed,
        deterministic=opts.deterministic,
    )
