"""glibc malloc settings for neuralcli processes (Linux): fewer page faults per training step.

By default glibc serves an allocation from a fresh `mmap` once it is larger than a threshold
that adapts up to 32 MiB, unmaps it on free, and returns free memory at the top of the heap
to the system once more than twice that threshold is free. A training step allocates the same
large tensors again and again (block outputs, gradients, the transformer's activations), so
each of them page-faults on first touch: the kernel maps and zeroes it 4 KiB at a time.
Measured on the 2-core CPU machine (fp32, 2 threads, steps after warm-up):

- Lorenz denoiser (32 MiB activations): 93k faults per step -> 0; 2.09-2.21 s -> 1.93-2.03 s;
  peak RSS 1273-1278 -> 1355-1361 MB.
- MC_Maze velocity denoiser (73 MB activations): 306k -> 5 faults; 10.7 s -> 9.7 s; peak RSS
  3224 -> 3373 MB.

`tune_allocator` raises the mmap threshold to `MMAP_THRESHOLD` and the trim threshold to
`TRIM_THRESHOLD`, so those tensors are reused from the heap. Allocations larger than the mmap
threshold still come from mmap: the fused LDNS blocks pool those themselves
(models/layers/buffer_pool.py), and a heap holding them fragments (5.4 GB instead of 3.4 GB
peak on the velocity denoiser with mmap off). The price is the higher peak above and up to
`TRIM_THRESHOLD` of free heap kept by the process; `trim_heap` hands that back (the training
loop calls it when a run ends).

The CLI's LDNS commands (`train ae|diffusion|spike-history`, `sample`, `demo`) call
`tune_allocator` first; the transformer commands do not, because the LFP encoder's mixed
49-393 MB tensors fragment a heap that serves them (44.9 s per step but 6.7 GB peak, over its
5.75 GB bar). NEURALCLI_DEFAULT_MALLOC=1 keeps glibc's defaults; library users may call
it themselves. Elsewhere (macOS, musl, Windows) both functions do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

MMAP_THRESHOLD = 256 * 2**20  # bytes; glibc's ceiling for the setting is far higher on 64 bit
TRIM_THRESHOLD = 1024 * 2**20  # bytes
OPT_OUT_VARIABLE = "NEURALCLI_DEFAULT_MALLOC"

# mallopt parameter numbers, <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (the only one with these settings), else None."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: AttributeError on musl)
    except (OSError, AttributeError):
        return None
    return libc


def tune_allocator() -> bool:
    """Apply MMAP_THRESHOLD and TRIM_THRESHOLD to this process; True when they were set.

    Does nothing (False) off glibc or when NEURALCLI_DEFAULT_MALLOC is set to a non-empty
    value other than 0.
    """
    if os.environ.get(OPT_OUT_VARIABLE, "0") not in ("", "0"):
        return False
    libc = _glibc()
    if libc is None:
        return False
    # mallopt returns 1 on success. Setting either disables glibc's adaptive threshold.
    trim_ok = libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    mmap_ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return trim_ok and mmap_ok


def trim_heap() -> None:
    """Return free heap memory to the system (glibc `malloc_trim(0)`); no-op elsewhere."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
