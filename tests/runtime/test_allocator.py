"""runtime/allocator.py: glibc thresholds that let training reuse heap pages instead of faulting."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from neuralcli.runtime import allocator

glibc_only = pytest.mark.skipif(allocator._glibc() is None, reason="glibc-specific settings")

# A fresh interpreter per case: mallopt settings are process-wide and cannot be undone. Each
# round allocates and frees what a small training step would: three 40 MiB tensors (above
# glibc's largest adaptive mmap threshold, 32 MiB).
_SCRIPT = """
import json, resource, sys, torch
from neuralcli.runtime.allocator import tune_allocator
tuned = tune_allocator() if sys.argv[1] == "tuned" else False
faults = []
for _ in range(12):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    tensors = [torch.ones(10 * 2**20) for _ in range(3)]
    del tensors
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"tuned": tuned, "faults": faults[-3:]}))  # steady state
"""
ROUND_PAGES = 3 * 10 * 2**20 * 4 // 4096  # 4 KiB pages touched by one round


def _run(mode: str, env: dict[str, str] | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@glibc_only
def test_tuned_process_reuses_large_allocations_without_faulting() -> None:
    default = _run("default")
    tuned = _run("tuned")
    assert tuned["tuned"] is True
    assert min(default["faults"]) >= ROUND_PAGES  # mapped afresh every round
    assert max(tuned["faults"]) < ROUND_PAGES // 10  # the freed heap is reused


@glibc_only
def test_opt_out_variable_keeps_glibc_defaults() -> None:
    env = dict(os.environ, **{allocator.OPT_OUT_VARIABLE: "1"})
    result = _run("tuned", env=env)
    assert result["tuned"] is False
    assert min(result["faults"]) >= ROUND_PAGES


def test_trim_heap_is_safe_to_call() -> None:
    allocator.trim_heap()  # no-op off glibc; returns free heap pages on glibc
