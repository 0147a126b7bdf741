"""Fixtures shared by the model tests."""

from __future__ import annotations

import pytest

from neuralcli.models.layers.buffer_pool import POOL, BufferPool


@pytest.fixture
def pool_all(monkeypatch: pytest.MonkeyPatch) -> BufferPool:
    """The shared buffer pool, taking every tensor of the fused blocks however small; emptied
    before and after the test."""
    POOL.release()
    monkeypatch.setattr(POOL, "min_bytes", 0)
    yield POOL
    POOL.release()
