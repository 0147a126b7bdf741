"""Two CPU processes under torchrun (gloo) run the same training loop."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import torch

from neuralcli.runtime.checkpoint import load_state, load_weights

SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    from pathlib import Path

    import torch
    from torch import nn

    from neuralcli.runtime.device import resolve_runtime
    from neuralcli.runtime.distributed import destroy_process_group
    from neuralcli.runtime.seed import seed_everything
    from neuralcli.training.config import TrainingConfig
    from neuralcli.training.loop import StopFlag, TrainingInterrupted, train
    from neuralcli.training.objective import LossOutput


    class Data:
        def __init__(self, n, seed):
            generator = torch.Generator().manual_seed(seed)
            self.x = torch.randn(n, 5, generator=generator)
            self.y = self.x.sum(dim=1, keepdim=True).sin()

        def __len__(self):
            return len(self.x)

        def batch(self, indices):
            return self.x[indices], self.y[indices]


    class Objective:
        def training_loss(self, model, batch):
            x, y = batch
            keep = (torch.rand_like(x) > 0.2).float()  # rank-dependent masks
            return LossOutput(nn.functional.mse_loss(model(x * keep), y), {})

        def validation_loss(self, model, batch):
            x, y = batch
            return LossOutput(nn.functional.mse_loss(model(x), y), {})


    def fit(runtime, run_dir, **kwargs):
        # Different initial weights per rank: DDP must broadcast rank 0's.
        seed_everything(runtime.seed + runtime.dist.rank)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
        config = TrainingConfig(
            epochs=3, batch_size=4, lr=1e-2, warmup_epochs=1, grad_clip=1.0, ema=True,
            val_every_epochs=1, checkpoint_every_steps=5, log_every_steps=3,
        )
        result = train(
            model=model, objective=Objective(), train_data=Data(23, 1), val_data=Data(6, 2),
            config=config, runtime=runtime, run_dir=run_dir, model_kind="toy",
            model_config={}, **kwargs,
        )
        weights = [float(p.detach().abs().sum()) for p in model.parameters()]
        return result.steps, weights


    out = Path(sys.argv[1])
    runtime = resolve_runtime(device="cpu", precision="fp32", seed=3)
    rank = runtime.dist.rank
    report = {"rank": rank, "world_size": runtime.dist.world_size}
    report["full_steps"], report["full_weights"] = fit(runtime, out / "full")

    # Only rank 1 is asked to stop; the ranks must agree on one step.
    flag = StopFlag()
    if rank == 1:
        flag.request_stop()
    try:
        fit(runtime, out / "cut", stop_flag=flag)
    except TrainingInterrupted as err:
        report["stopped_at"] = err.result.steps
    report["resumed_steps"], report["resumed_weights"] = fit(runtime, out / "cut", resume=True)
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    destroy_process_group()
    """
)

_TORCHRUN_VARIABLES = (
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_train_in_step(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _TORCHRUN_VARIABLES and not key.startswith("TORCHELASTIC_")
    }
    env["OMP_NUM_THREADS"] = "1"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        str(script),
        str(tmp_path),
    ]
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world_size"] == 2 for r in reports)
    # 23 items over 2 ranks: 11 each (one dropped), batches of 4 → 3 steps per epoch.
    assert reports[0]["full_steps"] == reports[1]["full_steps"] == 9
    assert reports[0]["full_weights"] == reports[1]["full_weights"]  # gradients were averaged
    # The stop request reached rank 0 at the first synchronisation point (the log at step 3).
    assert reports[0]["stopped_at"] == reports[1]["stopped_at"] == 3
    assert reports[0]["resumed_steps"] == reports[1]["resumed_steps"] == 9
    assert reports[0]["resumed_weights"] == reports[0]["full_weights"]

    for name in ("full", "cut"):
        run_dir = tmp_path / name
        assert sorted(p.name for p in run_dir.glob("*model.safetensors*")) == ["model.safetensors"]
        assert sorted(p.name for p in run_dir.glob("*state.pt*")) == ["state.pt"]
        assert len(load_state(run_dir)["rng"]) == 2  # one RNG state per rank
    full, resumed = load_weights(tmp_path / "full"), load_weights(tmp_path / "cut")
    assert all(torch.equal(value, resumed[name]) for name, value in full.items())
