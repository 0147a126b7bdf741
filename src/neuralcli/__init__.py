"""neuralcli: latent diffusion for spike trains and spike-to-LFP distillation."""

__version__ = "0.1.0"
