"""JMVAE study: the paper's models, objectives, likelihood estimators and trainer.

The package is built in floors; each may import only the floors below it
(tests/test_layers.py checks every import, in functions too):

- ground: config, environment (the standard library only), store (run folders, atomic
  writes, markers, locks, provenance)
- nn (networks), then models (every model's declaration; the registry), data (datasets)
- training and measure (both above models and data, neither importing the other)
- pages (the book's pages; the reading side of the results; never training, measure, study)
- study (runs, notebooks, the pipeline and the command line)
"""

__version__ = "0.1.0"
