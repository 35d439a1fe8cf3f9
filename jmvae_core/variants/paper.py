"""The paper's five MNIST models (book/model.md): VAE, CVAE, CMMA, JMVAE-zero and JMVAE-kl.

Their networks, objectives and estimator tables stay where the study defined them (models.py,
objectives.py, estimators.py); this file declares each one to the registry from those tables.
"""

from __future__ import annotations

from ..estimators import ESTIMATORS
from ..generate import via_p_z_w, via_prior_and_label, via_q_z_w, via_q_z_x
from ..models import MODEL_BUILDERS
from ..objectives import OBJECTIVES
from ..registry import ModelSpec, register

LABELS = {  # as the book's tables and figures name them
    "vae": "VAE",
    "cvae": "CVAE",
    "cmma": "CMMA",
    "jmvae_zero": "JMVAE-zero",
    "jmvae_kl": "JMVAE-kl",
}
LABEL_TO_IMAGE = {
    "vae": None,
    "cvae": via_prior_and_label,
    "cmma": via_p_z_w,
    "jmvae_zero": via_q_z_w,
    "jmvae_kl": via_q_z_w,
}
IMAGE_TO_LABEL = {"jmvae_zero": via_q_z_x, "jmvae_kl": via_q_z_x}  # the models with p(w|z)

for _name, _build in MODEL_BUILDERS.items():
    register(
        ModelSpec(
            name=_name,
            label=LABELS[_name],
            build=_build,
            objective=OBJECTIVES[_name],
            estimators=ESTIMATORS[_name],
            label_to_image=LABEL_TO_IMAGE[_name],
            image_to_label=IMAGE_TO_LABEL.get(_name),
            bf16_estimators=True,  # measured: benchmarks/estimator_precision.py
        )
    )
