"""Networks: the MLP and convolutional layers, the diagonal Gaussian every encoder returns
(sampling and the reparameterisation written once, networks.Gaussian) and the posteriors that
combine Gaussians (products and mixtures of experts). Imports only the ground (config)."""
