"""The face-image models of book/celeba.md: one convolutional family, its own names.

VAE-GAN, CVAE-GAN, CMMA-GAN, JMVAE-GAN (the zero form), JMVAE-kl-GAN and JMVAE-kl without the
GAN term, all built by jmvae_core.nn.conv.FaceModel. A GAN model's objective is the VAE-family
loss of its first update (jmvae_core.training.gan); the decoder's and the discriminator's updates
follow from `adversarial`. Every estimator appears twice: with the plain sum over pixels and
channels ("marginal", ...) and with the authors' channel average ("marginal_channel_mean", ...).
"""

from __future__ import annotations

from jmvae_core.models.declaration import ModelSpec
from jmvae_core.models.paper import ESTIMATORS, OBJECTIVES
from jmvae_core.nn.conv import FaceModel

# the density terms that change with the image convention (measure.estimators._densities)
_CHANNEL_MEAN = {"px": "px_cm", "px_w": "px_w_cm"}


def both_conventions(table: dict) -> dict:
    """An MNIST estimator table with each estimator also in the channel-mean convention."""
    out = dict(table)
    for name, (proposal, terms, conditional) in table.items():
        cm_terms = tuple(_CHANNEL_MEAN.get(t, t) for t in terms)
        out[f"{name}_channel_mean"] = (proposal, cm_terms, conditional)
    return out


# name -> (display label, the MNIST model whose loss and estimators it shares, adversarial?)
FACE_MODELS = {
    "vae_gan": ("VAE-GAN", "vae", True),
    "cvae_gan": ("CVAE-GAN", "cvae", True),
    "cmma_gan": ("CMMA-GAN", "cmma", True),
    "jmvae_gan": ("JMVAE-GAN (zero)", "jmvae_zero", True),
    "jmvae_kl_gan": ("JMVAE-kl-GAN", "jmvae_kl", True),
    "jmvae_kl_face": ("JMVAE-kl (no GAN)", "jmvae_kl", False),
}

SPECS = tuple(
    ModelSpec(
        name=name,
        label=label,
        build=FaceModel,
        objective=OBJECTIVES[base],
        estimators=both_conventions(ESTIMATORS[base]),
        family="faces",
        adversarial=adversarial,
    )
    for name, (label, base, adversarial) in FACE_MODELS.items()
)
