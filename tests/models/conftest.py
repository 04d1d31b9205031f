import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for the module: two OpenMP threads on a 2-core box shared with other
    jobs run tiny convolutions ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
