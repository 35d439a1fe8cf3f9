"""One file per MNIST model, each registering its declaration (jmvae_core.registry).

paper.py registers the paper's five models from the tables of models.py, objectives.py and
estimators.py; every other file is one model that followed JMVAE, imported by the registry
when its name is in config.SUCCESSORS.
"""
