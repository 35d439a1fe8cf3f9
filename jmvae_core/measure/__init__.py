"""Measurement of trained models: the importance-sampled estimators, generation and the
figures' arrays, the latent probe, the digit judge and the face-attribute judge. Writes through
jmvae_core.store; imports the ground, nn, models and data, never training, pages or study."""
