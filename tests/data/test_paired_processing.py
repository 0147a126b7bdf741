"""In-place z-scoring of long sessions equals the plain float64 recipe."""

import numpy as np
import pytest

from neuralcli.data.paired_processing import zscore_in_place
from neuralcli.data.preprocess.kinematics import zscore


def test_zscore_in_place_equals_plain_recipe():
    rng = np.random.default_rng(0)
    values = (rng.normal(3.0, 2.0, size=(1000, 5)) * [1, 10, 100, 0, 1]).astype(np.float32)
    expected = zscore(values)
    out = zscore_in_place(values.copy(), block_rows=64)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    rows = np.arange(0, 1000, 3)
    np.testing.assert_allclose(
        zscore_in_place(values.copy(), rows=rows, block_rows=50),
        zscore(values, rows=rows),
        rtol=1e-6,
        atol=1e-6,
    )


def test_zscore_in_place_refuses_other_dtypes():
    with pytest.raises(ValueError, match="float32"):
        zscore_in_place(np.zeros((3, 2)))
