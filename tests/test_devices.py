import pytest

from imagerag_sdk.devices import resolve_device
from imagerag_sdk.errors import ConfigError

torch = pytest.importorskip("torch")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_auto_falls_back_to_cpu_and_cuda_without_cuda_is_an_error():
    assert resolve_device("auto", component="x") in ("cpu", "mps")
    assert resolve_device("cpu", component="x") == "cpu"
    with pytest.raises(ConfigError, match="sdxl: device 'cuda:1' asked for but CUDA is not available"):
        resolve_device("cuda:1", component="sdxl")
