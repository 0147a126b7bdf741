"""Reuse of large CPU scratch tensors inside the fused block functions (fused.py).

glibc serves every allocation of 32 MiB or more with a fresh `mmap` and unmaps it on free, so
each new tensor that size page-faults on first touch: the kernel maps and zeroes it 4 KiB at a
time. At the MC_Maze denoiser sizes (C = 256, batch 512, 140 bins: 73 MB per activation) a
training step allocates about 15 GB that way, and the faults cost more than its arithmetic
(18.7 s vs 10.5 s per step with mmap disabled, 2 threads). Disabling mmap process-wide fixes
the faults but fragments the heap (5.4 GB peak RSS instead of 3.4 GB), so instead the fused
functions take the big tensors they own (scratch, and activations they save for their own
backward) from this pool and give them back when done: in steady state a training step reuses
the same pages.

Rules that keep this safe: a tensor is given back only by the code that took it, once nothing
else refers to it (never a tensor returned to the caller or to autograd); only CPU tensors of
at least `min_bytes` (4 MiB) are pooled. Smaller ones come from glibc's heap bins, which reuse
them. Mid-sized ones (the MC_Maze autoencoder's 9-20 MB activations) come from the heap too
once glibc's mmap threshold has adapted, but the heap is trimmed and regrown around them:
pooling them cut the Lorenz autoencoder's page faults from 75k to 26k per step and its peak
RSS by about 80 MB. The CLI's LDNS commands also raise glibc's thresholds
(runtime/allocator.py), which serves the remaining tensors (block outputs, gradients) from
the heap. CUDA has its own caching allocator.

The pool keeps free buffers of at most `max_sizes` distinct sizes, dropping the least
recently used size first, so changing batch sizes cannot make it grow without bound.
`release_buffers()` frees everything it holds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch

_Key = tuple[int, torch.dtype]


class BufferPool:
    """Free contiguous CPU tensors by (numel, dtype), handed out again by `take`."""

    def __init__(self, *, min_bytes: int = 4 * 2**20, max_sizes: int = 6) -> None:
        self.min_bytes = min_bytes
        self.max_sizes = max_sizes
        self._free: OrderedDict[_Key, list[torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()

    def pools(self, numel: int, dtype: torch.dtype, device: torch.device) -> bool:
        """Whether a tensor of this size, dtype and device goes through the pool."""
        return device.type == "cpu" and numel * dtype.itemsize >= self.min_bytes

    def take(
        self, shape: tuple[int, ...], *, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """An uninitialised contiguous tensor of `shape`, reused when the pool holds one."""
        numel = 1
        for size in shape:
            numel *= size
        if self.pools(numel, dtype, device):
            key = (numel, dtype)
            with self._lock:
                free = self._free.get(key)
                if free:
                    self._free.move_to_end(key)
                    return free.pop().view(shape)
        return torch.empty(shape, dtype=dtype, device=device)

    def give(self, *tensors: torch.Tensor) -> None:
        """Return tensors from `take` (or views of all of one); others are ignored."""
        for tensor in tensors:
            storage_numel = tensor.untyped_storage().nbytes() // tensor.element_size()
            if (
                not tensor.is_contiguous()
                or tensor.storage_offset() != 0
                or tensor.numel() != storage_numel
                or not self.pools(tensor.numel(), tensor.dtype, tensor.device)
            ):
                continue
            key = (tensor.numel(), tensor.dtype)
            with self._lock:
                self._free.setdefault(key, []).append(tensor.detach().view(-1))
                self._free.move_to_end(key)
                while len(self._free) > self.max_sizes:
                    self._free.popitem(last=False)

    def held_bytes(self) -> int:
        """Bytes of the free tensors the pool holds."""
        with self._lock:
            return sum(t.numel() * t.element_size() for free in self._free.values() for t in free)

    def release(self) -> None:
        """Drop every free tensor (their memory goes back to the system)."""
        with self._lock:
            self._free.clear()


POOL = BufferPool()


def release_buffers() -> None:
    """Free the scratch memory the fused blocks keep between training steps."""
    POOL.release()
