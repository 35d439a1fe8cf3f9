"""The judge of attribute -> face coherence: a CNN trained on real face images (book/celeba.md).

Coherence of a model = the fraction of faces generated from a test attribute vector whose
attributes, as the judge reads them, equal the requested ones. Its chance baseline pairs the
same generated faces with the attribute vectors of other (randomly permuted) test faces.
The judge is trained once per dataset configuration and cached beside the runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from jmvae_core import environment, store
from jmvae_core.config import RunConfig
from jmvae_core.measure.faces import z_from_attributes
from jmvae_core.nn.conv import conv_stack
from jmvae_core.nn.networks import glorot_

WIDTH, EPOCHS, LR, BATCH = 16, 4, 1e-3, 100


class AttributeClassifier(nn.Module):
    """Images (B, 3, 64, 64) -> one logit per attribute (B, A)."""

    def __init__(self, n_attributes: int, width: int = WIDTH):
        super().__init__()
        self.net = nn.Sequential(conv_stack(width, leaky=True), nn.Linear(64 * width, n_attributes))

    def forward(self, x):
        return self.net(x)


def classifier_dir(cfg: RunConfig, profile: str, root=None) -> Path:
    """results/<profile>/classifier-<hash of the data options and the judge's settings>."""
    key = {"dataset": cfg.dataset, "data": cfg.to_dict()["data"], "n_train": cfg.train.n_train}
    key["judge"] = [WIDTH, EPOCHS, LR, BATCH, cfg.train.seed]
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    base = Path(root if root is not None else environment.results_root())
    return base / profile / f"classifier-{cfg.dataset}-{digest}"


@torch.no_grad()
def predict(clf, x: torch.Tensor, batch: int = 250) -> torch.Tensor:
    """Attribute signs (+1/-1) the judge reads from images: (N, 3, 64, 64) -> (N, A)."""
    clf.eval()
    return torch.cat([clf(x[i : i + batch]).sign() for i in range(0, x.shape[0], batch)])


def train_classifier(data, seed: int, progress: bool = True) -> AttributeClassifier:
    """Adam on the binary cross-entropy of every attribute of the real training faces."""
    torch.manual_seed(seed)
    device = data.x_train.device
    clf = glorot_(AttributeClassifier(data.w_train.shape[1])).to(device)
    opt = torch.optim.Adam(clf.parameters(), lr=LR)
    g = torch.Generator(device=device).manual_seed(seed)
    target = (data.w_train > 0).float()
    n = data.x_train.shape[0]
    for _ in tqdm(range(EPOCHS), desc="attribute judge", disable=not progress, leave=False):
        clf.train()
        order = torch.randperm(n, generator=g, device=device)
        for b in range(n // BATCH):
            idx = order[b * BATCH : (b + 1) * BATCH]
            loss = F.binary_cross_entropy_with_logits(clf(data.x_train[idx]), target[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return clf.eval()


def load_or_train(cfg: RunConfig, profile: str, data, root=None, progress=True):
    """The cached judge of this data configuration (trained and written on first use) and its
    per-attribute accuracy on the real test faces."""
    folder = classifier_dir(cfg, profile, root)
    n_attr = data.w_train.shape[1]
    if store.is_done(folder) and (folder / "classifier.pt").exists():  # weights: not committed
        clf = AttributeClassifier(n_attr).to(data.x_train.device)
        clf.load_state_dict(store.load_torch(folder / "classifier.pt", data.x_train.device))
        return clf.eval(), pd.read_csv(folder / "accuracy.csv")
    clf = train_classifier(data, cfg.train.seed, progress)
    pred = predict(clf, data.x_test).cpu().numpy()
    truth = data.w_test.cpu().numpy()
    acc = pd.DataFrame(
        {
            "attribute": list(data.attribute_names),
            "accuracy": (pred == truth).mean(0),
            "positive_rate": (truth > 0).mean(0),
        }
    )
    store.save_torch(folder / "classifier.pt", clf.state_dict())
    store.write_text(folder / "accuracy.csv", acc.to_csv(index=False))
    store.mark_done(folder)
    return clf, acc


@torch.no_grad()
def coherence(model, clf, data, seed: int, batch: int = 250) -> pd.DataFrame:
    """Per attribute: the fraction of faces generated from the test attribute vectors (one
    draw of z each) that the judge reads as requested, and the permuted-pairing baseline."""
    model.eval()
    g = torch.Generator(device=data.w_test.device).manual_seed(seed)
    preds = []
    for i in range(0, data.w_test.shape[0], batch):
        w = data.w_test[i : i + batch]
        preds.append(predict(clf, model.generate(z_from_attributes(model, w, g), w)))
    pred = torch.cat(preds).cpu().numpy()
    asked = data.w_test.cpu().numpy()
    perm = np.random.default_rng(seed).permutation(len(asked))
    return pd.DataFrame(
        {
            "attribute": list(data.attribute_names),
            "coherence": (pred == asked).mean(0),
            "chance": (pred == asked[perm]).mean(0),
            "all_match": float((pred == asked).all(1).mean()),
        }
    )
