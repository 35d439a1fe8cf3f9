"""The book's pages: one module per page that needs more than a table (setup,
reproducibility, performance, status, latent, celeba; layout: what every page shares), the
tables, figures and verdicts, and the reading side of the results (pages.results, read-only).
Imports the ground, models and data, never training, measure or study."""
