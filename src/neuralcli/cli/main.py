"""The `neuralcli` command: global options and the command tree."""

from __future__ import annotations

from typing import Annotated

import typer

from neuralcli import __version__
from neuralcli.cli import data as data_cli
from neuralcli.cli import decode as decode_cli
from neuralcli.cli import demo as demo_cli
from neuralcli.cli import distill as distill_cli
from neuralcli.cli import evaluate as evaluate_cli
from neuralcli.cli import infer as infer_cli
from neuralcli.cli import sample as sample_cli
from neuralcli.cli import train as train_cli
from neuralcli.cli.common import STATE, GlobalOptions, emit, handle_errors, key_value_table, options
from neuralcli.pipelines.info import system_info

app = typer.Typer(
    name="neuralcli",
    help="Latent diffusion for spike trains (LDNS) and spike-to-LFP distillation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"neuralcli {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    home: Annotated[
        str | None,
        typer.Option(
            "--home",
            envvar="NEURALCLI_HOME",
            help="Root folder for data and runs [default: ./neuralcli-home]",
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto|cpu|cuda|cuda:N|mps")] = "auto",
    precision: Annotated[str, typer.Option("--precision", help="auto|fp32|bf16|fp16")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Random seed")] = 42,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object, no tables")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print the resolved config and runtime")
    ] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile models")] = False,
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="Deterministic kernels (slower)")
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version"),
    ] = None,
) -> None:
    """neuralcli: spike-train diffusion and spike-to-LFP distillation for motor-cortex data.

    Example: neuralcli demo
    """
    STATE.options = GlobalOptions(
        home=home,
        device=device,
        precision=precision,
        seed=seed,
        json=json_output,
        verbose=verbose,
        compile=compile,
        deterministic=deterministic,
    )


@app.command(epilog="Example: neuralcli --json info")
@handle_errors
def info() -> None:
    """Show versions, devices, precision support and the home directory."""
    payload = system_info(options().home_path)
    rows = dict(payload)
    rows["cuda_devices"] = (
        ", ".join(
            f"{d['index']}: {d['name']} ({d['memory_gib']} GiB)" for d in payload["cuda_devices"]
        )
        or "none"
    )
    rows["precisions"] = ", ".join(payload["precisions"])
    rows["distributed_backends"] = ", ".join(payload["distributed_backends"])
    emit(payload, key_value_table("neuralcli info", rows))


app.add_typer(data_cli.app, name="data")
app.add_typer(train_cli.app, name="train")
app.add_typer(evaluate_cli.app, name="evaluate")
app.command(name="sample", epilog=sample_cli.EXAMPLE)(sample_cli.sample)
app.command(name="demo", epilog=demo_cli.EXAMPLE)(demo_cli.demo)
app.command(name="distill", epilog=distill_cli.EXAMPLE)(distill_cli.distill)
app.command(name="infer", epilog=infer_cli.EXAMPLE)(infer_cli.infer)
app.command(name="decode", epilog=decode_cli.EXAMPLE)(decode_cli.decode)


def run() -> None:
    """Console-script entry point."""
    app()
