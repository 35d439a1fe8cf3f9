"""JMVAE study: the paper's models, objectives, likelihood estimators and trainer."""

__version__ = "0.1.0"
