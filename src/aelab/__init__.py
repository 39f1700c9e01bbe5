"""aelab: autoencoder-based representation learning on images with PyTorch Lightning."""

__version__ = "0.1.0"
