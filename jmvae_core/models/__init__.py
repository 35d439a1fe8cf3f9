"""Every model by name: each model's declaration in one place (book/model.md, book/celeba.md).

A model is one file of this folder. It builds its networks, names its objective, the
estimators that apply with the proposal each one draws from, how it generates in each direction
and its display label, and declares that as a `declaration.ModelSpec` in its `SPECS`. Two families,
each an explicit list in config: the MNIST models (the paper's five in paper.py, then the
successors mvae.py, mmvae.py, mopoe.py, in config.SUCCESSORS order) and the face models of
book/celeba.md (faces.py, config.IMAGE_VARIANTS). No name is in both. The registry below is
built once, from the static imports; model building, training, the estimators, the figures'
arrays and the tables read it.
"""

from __future__ import annotations

from torch import nn

from jmvae_core.config import FAMILIES, ModelConfig
from jmvae_core.models import faces, mmvae, mopoe, mvae, paper
from jmvae_core.models.declaration import ModelSpec
from jmvae_core.nn.networks import glorot_


def _registry(*modules) -> dict[str, ModelSpec]:
    specs: dict[str, ModelSpec] = {}
    for module in modules:
        for spec in module.SPECS:
            if spec.name not in FAMILIES.get(spec.family, ()):
                raise ValueError(
                    f"model {spec.name!r} is not listed in config for the {spec.family!r} family"
                )
            if spec.name in specs:
                raise ValueError(f"model {spec.name!r} is declared twice")
            specs[spec.name] = spec
    missing = [n for family in FAMILIES.values() for n in family if n not in specs]
    if missing:
        raise RuntimeError(f"no model file declares {missing}")
    return specs


REGISTRY = _registry(paper, mvae, mmvae, mopoe, faces)


def spec(variant: str) -> ModelSpec:
    """The declaration of a variant; KeyError naming the known ones."""
    if variant not in REGISTRY:
        raise KeyError(f"no model {variant!r}; registered: {', '.join(REGISTRY)}")
    return REGISTRY[variant]


def names(family: str = "mnist") -> tuple[str, ...]:
    """The variants of a family in config order: for MNIST the paper's five, then the
    successors."""
    return tuple(FAMILIES[family])


def estimator_names(variant: str) -> tuple[str, ...]:
    """Names of the estimators that apply to a variant (book/model.md, book/celeba.md)."""
    return tuple(spec(variant).estimators)


def label(variant: str) -> str:
    """The display label of a variant (tables, figures)."""
    return spec(variant).label


def build_model(cfg: ModelConfig) -> nn.Module:
    """Instantiate the variant named in `cfg` (MNIST or face family) with Glorot-uniform weights
    and zero biases. The model carries its declaration as `model.spec`, which training, the
    estimators and generation read."""
    declared = spec(cfg.variant)
    model = glorot_(declared.build(cfg))
    model.spec = declared
    return model
