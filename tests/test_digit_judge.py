"""The independent digit judge: its coherence arithmetic, its training, and the committed one."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from jmvae_core.measure import digit_judge
from jmvae_core.pages import results

ROOT = Path(__file__).resolve().parent.parent


class ReadsFirstTen(nn.Module):
    """A stand-in judge that reads the digit from the first ten pixels."""

    def forward(self, x):
        return x[:, :10]


def _images(shown: list[int], n: int = 5) -> torch.Tensor:
    """(10, n, 784): for requested digit d, images whose first ten pixels say shown[d]."""
    x = torch.zeros(10, n, 784)
    for d, s in enumerate(shown):
        x[d, :, s] = 1.0
    return x


def test_coherence_counts_images_read_as_requested():
    right = digit_judge.coherence(_images(list(range(10))), ReadsFirstTen())
    assert right["coherence"] == 1.0 and right["sem"] == 0.0 and right["n"] == 50
    assert right["per_digit"].tolist() == [1.0] * 10
    shifted = [(d + 1) % 10 for d in range(10)]
    assert digit_judge.coherence(_images(shifted), ReadsFirstTen())["coherence"] == 0.0
    half = list(range(5)) + shifted[5:]  # digits 0-4 right, 5-9 wrong
    found = digit_judge.coherence(_images(half), ReadsFirstTen())
    assert found["coherence"] == 0.5 and found["sem"] == pytest.approx((0.25 / 50) ** 0.5)
    assert found["per_digit"].tolist() == [1.0] * 5 + [0.0] * 5


def test_a_judge_trained_on_few_images_reads_real_digits(tmp_path):
    judge, record = digit_judge.load_or_train("smoke", 3000, "cpu", root=tmp_path, progress=False)
    assert record["n_train"] == 3000 and record["test_accuracy"] > 0.9
    again, same = digit_judge.load_or_train("smoke", 3000, "cpu", root=tmp_path, progress=False)
    assert same == record  # cached, not retrained
    for a, b in zip(judge.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def _committed_judges() -> list[Path]:
    return sorted((ROOT / "results" / "quick").glob("digit-judge-*"))


def test_the_committed_judge_reads_the_mnist_test_set_at_99_percent():
    (folder,) = _committed_judges()
    record = json.loads((folder / digit_judge.ACCURACY).read_text())
    assert record["n_test"] == 10000 and record["n_train"] == 60000
    assert record["test_accuracy"] >= 0.99
    judged = [r for r in results.load_runs("quick") if "judged_coherence" in r]
    assert {r["variant"] for r in judged} == {"cvae", "cmma", "jmvae_zero", "jmvae_kl"}
    for r in judged:
        assert r["judged_coherence"]["judge"] == folder.name
        assert r["judged_coherence"]["judge_accuracy"] == record["test_accuracy"]
