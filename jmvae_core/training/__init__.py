"""Training: fit (one run), the GAN's three updates, R runs stacked into one model and
trained in one step (batched, batched_step, stacked). Writes through jmvae_core.store; imports
the ground, nn, models and data, never measure, pages or study."""
