"""Datasets: MNIST (fetched, verified, binarised), the face images (the drawn stand-in and
CelebA with the authors' crop). Imports only the ground (config, environment, store)."""
