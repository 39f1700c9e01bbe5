"""aelab: autoencoder-based representation learning on images with PyTorch Lightning."""

from aelab.denormals import flush_denormals

__version__ = "0.1.0"

flush_denormals()  # before PyTorch starts its OpenMP threads, so they inherit it (see aelab.denormals)
