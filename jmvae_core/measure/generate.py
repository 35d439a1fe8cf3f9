"""Arrays the paper's figures need: latent means, label->image grids, joint samples.

Images are returned as Bernoulli means in [0, 1] (the decoders' output, as the paper shows);
callers store them as uint8 to keep committed results small.
"""

from __future__ import annotations

import numpy as np
import torch

N_PER_LABEL = 8  # images per digit in label->image grids
N_JOINT = 64  # joint samples z ~ p(z)


def _eye(model, device) -> torch.Tensor:
    return torch.eye(model.cfg.w_dim, device=device)


@torch.no_grad()
def latent_means(model, x, w) -> dict:
    """Test-set means of every applicable encoder: {name: (N, D)} (the 2-D latent figures)."""
    out = {}
    if hasattr(model, "q_z_xw"):
        out["q_z_xw"] = model.q_z_xw(x, w).mu
    if hasattr(model, "infer_from_x"):
        out["q_z_x"] = model.infer_from_x(x).mu  # q(z|x) for kl, q(z|x,0) for zero
    if hasattr(model, "infer_from_w"):
        out["q_z_w"] = model.infer_from_w(w).mu
    return out


@torch.no_grad()
def label_to_image(model, generator, n=N_PER_LABEL) -> torch.Tensor | None:
    """For each digit, n images from the model's label -> image path (registry; JMVAE z~q(z|w)
    (or q(z|0,w)), CMMA z~p(z|w), CVAE p(x|z,w) with z~N(0,I)); each decoded to Bernoulli
    means. -> (10, n, 784), or None for a model without that path (the VAE)."""
    path = model.spec.label_to_image
    if path is None:
        return None
    device = next(model.parameters()).device
    w = _eye(model, device).repeat_interleave(n, dim=0)  # (10 n, 10)
    logits = path(model, w, generator)
    return torch.sigmoid(logits).view(model.cfg.w_dim, n, -1)


@torch.no_grad()
def joint_samples(model, generator, n=N_JOINT):
    """z ~ p(z) decoded to an image and its most probable label: -> ((n, 784), (n,)) or None."""
    if not hasattr(model, "p_w_z"):
        return None
    device = next(model.parameters()).device
    z = torch.randn(n, model.cfg.latent_dim, generator=generator, device=device)
    return torch.sigmoid(model.p_x_z.logits(z)), model.p_w_z.logits(z).argmax(-1)


def figure_arrays(model, x, w, seed: int) -> dict[str, np.ndarray]:
    """Everything the result notebooks plot for one run, as compact numpy arrays."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    to_u8 = lambda t: (t.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()  # noqa: E731
    arrays = {}
    if model.cfg.latent_dim == 2:  # 64-d means are large and no figure uses them
        arrays["labels"] = w.argmax(-1).to(torch.uint8).cpu().numpy()
        for name, mu in latent_means(model, x, w).items():
            arrays[f"mean_{name}"] = mu.float().cpu().numpy()
    grid = label_to_image(model, generator)
    if grid is not None:
        arrays["label_to_image"] = to_u8(grid)
    joint = joint_samples(model, generator)
    if joint is not None:
        arrays["joint_images"] = to_u8(joint[0])
        arrays["joint_labels"] = joint[1].to(torch.uint8).cpu().numpy()
    return arrays


@torch.no_grad()
def coherence(model, generator, n: int = 100) -> float | None:
    """Label -> image -> label: the fraction of images sampled from each label (binarised draws
    of label_to_image) that the model's own image -> label path (JMVAE: argmax p(w|z) at the
    mean of q(z|x) or q(z|x,0)) returns to that label. None for models without p(w|z)."""
    if not hasattr(model, "p_w_z"):
        return None
    means = label_to_image(model, generator, n)
    x = torch.bernoulli(means.reshape(-1, means.shape[-1]), generator=generator)
    labels = torch.arange(means.shape[0], device=x.device).repeat_interleave(n)
    pred = model.spec.image_to_label(model, x).argmax(-1)
    return float((pred == labels).float().mean())
