"""The machine's state for the benchmarks' JSON: plain matmul throughput.

This project's 2-core machine is shared, and a plain matmul has run at 86-164 GFLOP/s from
one benchmark run to the next; the benchmarks record one next to their figures.
"""

from __future__ import annotations

import statistics
import time


def matmul_gflops(
    torch, rows: int, inner: int, cols: int, *, dtype=None, repeats: int = 5
) -> float:
    """GFLOP/s of (rows, inner) x (inner, cols) on the CPU: median of `repeats` timed calls."""
    dtype = dtype or torch.float32
    a = torch.randn(rows, inner).to(dtype)
    b = torch.randn(inner, cols).to(dtype)
    out = torch.empty(rows, cols, dtype=dtype)
    torch.mm(a, b, out=out)  # untimed first call
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - started)
    return 2 * rows * inner * cols / statistics.median(times) / 1e9


def plain_matmul_gflops(torch) -> float:
    """GFLOP/s of a plain 2048² fp32 matmul, rounded to 0.1: the figure the LDNS benchmarks
    record next to theirs."""
    return round(matmul_gflops(torch, 2048, 2048, 2048), 1)
