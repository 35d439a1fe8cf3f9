"""Shared fixtures: tiny configs, and the genuine MNIST files (fetched by the test command)."""

import os

import pytest
import torch

from jmvae_core.data.mnist import MNIST_MD5, load_mnist, mnist_dir

# Under pytest-xdist each worker process takes its share of the cores, and so do the kernels
# and subprocesses it starts (they inherit OMP_NUM_THREADS): two workers with two intra-op threads
# each on two cores would spin against each other.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def mnist_small():
    """The first 1,000 training and 200 test images of genuine MNIST, on the CPU."""
    folder = mnist_dir()
    if not all((folder / name).exists() for name in MNIST_MD5):
        pytest.fail(
            f"MNIST is not in {folder}: the test command runs `jmvae fetch-data mnist` first"
        )
    return load_mnist(n_train=1000, n_test=200)


@pytest.fixture(autouse=True)
def _single_seed():
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """One intra-op thread: bitwise agreement of batched and single runs is a property of one
    thread (tests/test_batched.py's docstring explains why)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Under pytest-xdist (--dist loadfile) files are handed to the workers in collection order: the
# longest files first (measured with --durations), so that the workers finish together.
LONGEST_FIRST = (
    "test_pipeline.py", "test_gpu_paper_mnist.py", "test_faces_pipeline.py", "test_notebooks.py",
    "test_benchmarks.py", "test_whole_plan.py", "test_batched_step.py", "test_cli_errors.py",
    "test_book_browser.py", "test_long_runs.py", "test_plan_training.py",
)  # fmt: skip


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest in order
