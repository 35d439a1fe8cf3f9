"""A model's declaration (`ModelSpec`), the five estimators of book/model.md and the ways a
model generates: the vocabulary every model file declares itself in (jmvae_core.models)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ModelSpec:
    """What the harness needs to know about one model.

    build: ModelConfig -> its networks (build_model then gives them Glorot-uniform weights).
    objective: (model, x, w, eps, beta, alpha) -> dict of batch-mean terms with "loss", the
        signature of the objectives in models/paper.py; eps (B, noise_samples * latent_dim) is
        the step's standard-normal noise, drawn by the caller.
    estimators: estimator name -> (proposal, log-density terms of the target, subtract
        log p_hat(w)?), as jmvae_core.measure.estimators documents.
    proposals: proposal name -> (model, x, w) -> a networks.Gaussian
        or a posteriors.Mixture; None: PROPOSALS (q(z|x,w), infer_from_x and infer_from_w).
    label_to_image: (model, w, generator) -> image logits, one image per row of w; None if the
        model does not generate images from labels.
    image_to_label: (model, x) -> label logits; None if the model does not infer labels.
    noise_samples: latent-sized standard-normal draws per example and step.
    bf16_estimators: whether the estimators may run the decoders in bfloat16 under "auto"
        (measure.estimators.resolve_precision): only for models where that was measured.
    family: "mnist" (image + digit label) or "faces" (64x64 colour images + attributes).
    adversarial: trained with the GAN's three updates (jmvae_core.training.gan); `objective` is then
        the loss of the first (the encoders').
    """

    name: str
    label: str
    build: Callable
    objective: Callable
    estimators: Mapping[str, tuple]
    proposals: Mapping[str, Callable] | None = None
    label_to_image: Callable | None = None
    image_to_label: Callable | None = None
    noise_samples: int = 1
    bf16_estimators: bool = False
    family: str = "mnist"
    adversarial: bool = False

    def noise_dim(self, latent_dim: int) -> int:
        """Width of the standard-normal noise one training step draws per example."""
        return latent_dim * self.noise_samples


# estimator name -> (proposal, log-density terms of the target, subtract log p_hat(w)?);
# the five of book/model.md, as JMVAE and its successors define them (estimate() reads
# a model's table from model.spec)
JMVAE_ESTIMATORS = {
    "joint": ("xw", ("px", "pw", "pz"), False),
    "marginal": ("xw", ("px", "pz"), False),
    "conditional": ("xw", ("px", "pw", "pz"), True),
    "pseudo_marginal": ("x", ("px", "pz"), False),
    "pseudo_conditional": ("w", ("px", "pw", "pz"), True),
}


# proposal name -> its distribution: the paper's models and the face models
PROPOSALS = {
    "xw": lambda m, x, w: m.q_z_xw(x, w),
    "x": lambda m, x, w: m.infer_from_x(x),
    "w": lambda m, x, w: m.infer_from_w(w),
}


ESTIMATOR_ORDER = ["joint", "marginal", "conditional", "pseudo_marginal", "pseudo_conditional"]


ESTIMATOR_LABELS = {
    "joint": "log p(x,w)",
    "marginal": "log p(x)",
    "conditional": "log p(x|w)",
    "pseudo_marginal": "log p(x), single input",
    "pseudo_conditional": "log p(x|w), single input",
}


# label -> image paths (ModelSpec.label_to_image): (model, w, generator) -> logits
def via_q_z_w(model, w, generator) -> torch.Tensor:
    """z ~ the model's inference from the label alone (JMVAE: q(z|w), or q(z|0,w)), p(x|z)."""
    return model.p_x_z.logits(model.infer_from_w(w).sample(generator))


def via_p_z_w(model, w, generator) -> torch.Tensor:
    """z ~ the learned conditional prior p(z|w) (CMMA), p(x|z)."""
    return model.p_x_z.logits(model.p_z_w(w).sample(generator))


def via_prior_and_label(model, w, generator) -> torch.Tensor:
    """z ~ N(0, I), then the conditional decoder p(x|z,w) (CVAE)."""
    z = torch.randn(w.shape[0], model.cfg.latent_dim, generator=generator, device=w.device)
    return model.p_x_zw.logits(z, w)


# image -> label path (ModelSpec.image_to_label): (model, x) -> label logits
def via_q_z_x(model, x) -> torch.Tensor:
    """argmax-ready logits of p(w|z) at the mean of the model's inference from the image alone."""
    return model.p_w_z.logits(model.infer_from_x(x).mu)
