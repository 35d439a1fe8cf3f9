"""Every model by name: each model's declaration in one place (book/model.md, book/celeba.md).

A model is one file. `jmvae_core/variants/<name>.py` builds its networks, names its objective,
the estimators that apply with the proposal each one draws from, how it generates in each
direction and its display label, and registers that `ModelSpec` here. Two families, each an
explicit list in config: the MNIST models (the paper's five from variants/paper.py, then every
successor named in config.SUCCESSORS, imported by name from variants/<name>.py, so adding one is
its file plus its name in that list) and the face models of book/celeba.md
(variants/faces.py, config.IMAGE_VARIANTS). No name is in both. Model building, training, the
estimators, the figures' arrays and the tables read this registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .config import IMAGE_VARIANTS, MNIST_VARIANTS

FAMILIES = {"mnist": MNIST_VARIANTS, "faces": IMAGE_VARIANTS}


@dataclass(frozen=True)
class ModelSpec:
    """What the harness needs to know about one model.

    build: ModelConfig -> its networks (build_model then gives them Glorot-uniform weights).
    objective: (model, x, w, eps, beta, alpha) -> dict of batch-mean terms with "loss", the
        signature of jmvae_core.objectives; eps (B, noise_samples * latent_dim) is the step's
        standard-normal noise, drawn by the caller.
    estimators: estimator name -> (proposal, log-density terms of the target, subtract
        log p_hat(w)?), as jmvae_core.estimators documents.
    proposals: proposal name -> (model, x, w) -> a networks.Gaussian
        or a posteriors.Mixture; None: estimators.PROPOSALS (q(z|x,w), infer_from_x and
        infer_from_w).
    label_to_image: (model, w, generator) -> image logits, one image per row of w; None if the
        model does not generate images from labels.
    image_to_label: (model, x) -> label logits; None if the model does not infer labels.
    noise_samples: latent-sized standard-normal draws per example and step.
    bf16_estimators: whether the estimators may run the decoders in bfloat16 under "auto"
        (estimators.resolve_precision): only for models where that was measured.
    family: "mnist" (image + digit label) or "faces" (64x64 colour images + attributes).
    adversarial: trained with the GAN's three updates (jmvae_core.gan); `objective` is then
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


_SPECS: dict[str, ModelSpec] = {}
_loaded = False


def register(spec: ModelSpec) -> ModelSpec:
    """Enter a model (build_model hands its declaration to every model it builds)."""
    if spec.name not in FAMILIES.get(spec.family, ()):
        raise ValueError(
            f"model {spec.name!r} is not listed in config for the {spec.family!r} family"
        )
    known = _SPECS.get(spec.name)
    if known is not None and known != spec:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _SPECS[spec.name] = spec
    return spec


def _load() -> None:
    global _loaded
    if _loaded:
        return
    importlib.import_module(".variants.paper", __package__)
    for name in MNIST_VARIANTS:
        if name not in _SPECS:  # a successor: its own file
            importlib.import_module(f".variants.{name}", __package__)
    importlib.import_module(".variants.faces", __package__)
    missing = [n for n in (*MNIST_VARIANTS, *IMAGE_VARIANTS) if n not in _SPECS]
    if missing:
        raise RuntimeError(f"no model file registered {missing}")
    _loaded = True


def spec(variant: str) -> ModelSpec:
    """The registered declaration of a variant; KeyError naming the known ones."""
    _load()
    if variant not in _SPECS:
        known = ", ".join(n for family in FAMILIES for n in names(family))
        raise KeyError(f"no model {variant!r}; registered: {known}")
    return _SPECS[variant]


def names(family: str = "mnist") -> tuple[str, ...]:
    """The registered variants of a family in config order: for MNIST the paper's five, then
    the successors."""
    _load()
    return tuple(n for n in FAMILIES[family] if n in _SPECS)


def estimator_names(variant: str) -> tuple[str, ...]:
    """Names of the estimators that apply to a variant (book/model.md, book/celeba.md)."""
    return tuple(spec(variant).estimators)


def label(variant: str) -> str:
    """The display label of a variant (tables, figures)."""
    return spec(variant).label
