import pytest
import torch

from neuralcli.errors import DeviceError
from neuralcli.runtime.device import resolve_device, resolve_precision, resolve_runtime


def test_cpu_and_auto_resolve_without_gpu():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto").type in ("cpu", "mps")


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "gpu0"])
def test_unknown_device_is_a_device_error(spec):
    with pytest.raises(DeviceError, match="--device"):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_says_what_to_do():
    with pytest.raises(DeviceError, match="use --device cpu"):
        resolve_device("cuda")


def test_precision_resolution_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(DeviceError, match="fp16"):
        resolve_precision("fp16", cpu)
    with pytest.raises(DeviceError, match="unknown precision"):
        resolve_precision("fp8", cpu)


def test_runtime_autocast_context():
    runtime = resolve_runtime(device="cpu", precision="bf16")
    layer = torch.nn.Linear(4, 4)
    with runtime.autocast():
        out = layer(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    fp32 = resolve_runtime(device="cpu", precision="fp32")
    with fp32.autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.float32
