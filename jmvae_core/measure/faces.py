"""What the CelebA chapter shows of a trained model (book/celeba.md); the data: data/faces.py.

Reconstructions from q(z|x) and q(z|x,w), faces generated from attribute vectors (the average
face per attribute), attribute editing (z from q(z|x,w') with one attribute flipped), and
attributes estimated from images (per-attribute accuracy and AUC). Images are returned as
uint8 (N, 64, 64, 3) with the standardisation undone, ready for plotting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from jmvae_core.nn.conv import IMAGE_SHAPE
from jmvae_core.nn.networks import Gaussian

# the book's figures: attributes edited in the figures (those present in the data are used)
EDIT_ATTRIBUTES = ("Male", "Smiling", "Eyeglasses", "Bangs", "Blond_Hair", "Mustache")
N_SHOWN = 8  # test faces in the reconstruction figure
N_EDITED = 4  # test faces in the editing figure
N_AVERAGED = 200  # attribute vectors averaged per attribute face (bounds the decoder's batch)
BATCH = 250  # test faces per forward pass


def infer_x(model, x):
    """Image-only inference (q(z|x), or q(z|x,0) for JMVAE-zero), or None if the model has none."""
    if model.q_z_x is None and model.p_w_z is None:
        return None  # CVAE-GAN and CMMA-GAN only infer from (x, w)
    return model.infer_from_x(x)


def z_from_attributes(model, w, generator=None):
    """z for generating from attributes: q(z|w) / q(z|0,w) (JMVAE), p(z|w) (CMMA), N(0, I)
    (CVAE, whose decoder takes w); the mean when `generator` is None, else one draw."""
    if model.cfg.variant == "vae_gan":
        return None
    if model.p_z_w is not None:
        q = model.p_z_w(w)
    elif model.p_x_zw is not None:
        mu = w.new_zeros(w.shape[0], model.cfg.latent_dim)
        q = Gaussian(mu, torch.ones_like(mu))
    else:
        q = model.infer_from_w(w)
    return q.mu if generator is None else q.sample(generator)


def _images(x: torch.Tensor, data) -> np.ndarray:
    from jmvae_core.data.celeba import to_images

    return to_images(x.detach().cpu(), data)


@torch.no_grad()
def face_arrays(model, data) -> dict[str, np.ndarray]:
    """Arrays of the face figures: originals and reconstructions, average face per attribute
    (over up to N_AVERAGED test attribute vectors), edits. Keys: recon_x, recon_from_x,
    recon_from_xw, attribute_faces, attribute_names, attribute_counts, edit_faces, edit_names."""
    model.eval()
    x, w = data.x_test[:N_SHOWN], data.w_test[:N_SHOWN]
    out = {"recon_x": _images(x, data)}
    z_x = infer_x(model, x)
    if z_x is not None:
        out["recon_from_x"] = _images(model.generate(z_x.mu, w), data)
    if model.q_z_xw is not None:
        out["recon_from_xw"] = _images(model.generate(model.q_z_xw(x, w).mu, w), data)
    if model.cfg.variant == "vae_gan":
        return out
    names = list(data.attribute_names)
    faces, counts = [], []
    for a in range(len(names)):
        rows = data.w_test[data.w_test[:, a] > 0][:N_AVERAGED]
        counts.append(rows.shape[0])
        if rows.shape[0] == 0:  # no test face has it: a black tile, counted as 0
            faces.append(torch.full(IMAGE_SHAPE, -1e9, device=rows.device))
            continue
        faces.append(model.generate(z_from_attributes(model, rows), rows).mean(0))
    out["attribute_faces"] = _images(torch.stack(faces), data)
    out["attribute_counts"] = np.array(counts)
    out["attribute_names"] = np.array(names)
    edits = [n for n in EDIT_ATTRIBUTES if n in names]
    x, w = data.x_test[:N_EDITED], data.w_test[:N_EDITED]
    grid = [x]
    for name in edits:
        w_edit = w.clone()
        w_edit[:, names.index(name)] *= -1
        z = model.q_z_xw(x, w_edit).mu if model.q_z_xw is not None else None
        grid.append(model.generate(z, w_edit))
    stacked = torch.stack(grid, dim=1).reshape(-1, *x.shape[1:])  # (faces x (1 + edits))
    out["edit_faces"] = _images(stacked, data)
    out["edit_names"] = np.array(edits)
    return out


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum formula (ties averaged); nan if one class."""
    pos = labels > 0
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@torch.no_grad()
def attribute_estimation(model, data) -> pd.DataFrame:
    """Attributes estimated from test images: E[w|z] at the mean of q(z|x) (q(z|x,0) for
    JMVAE-zero); per attribute the accuracy of its sign, the AUC and the positive rate."""
    model.eval()
    x = data.x_test
    parts = [
        model.p_w_z.mean(model.infer_from_x(x[i : i + BATCH]).mu) for i in range(0, len(x), BATCH)
    ]
    scores = torch.cat(parts).cpu().numpy()
    truth = data.w_test.cpu().numpy()
    rows = []
    for a, name in enumerate(data.attribute_names):
        rows.append(
            {
                "attribute": name,
                "accuracy": float(np.mean(np.sign(scores[:, a]) == truth[:, a])),
                "auc": auc(scores[:, a], truth[:, a]),
                "positive_rate": float(np.mean(truth[:, a] > 0)),
            }
        )
    return pd.DataFrame(rows)
