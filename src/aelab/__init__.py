"""aelab: autoencoder-based representation learning on images with PyTorch Lightning."""

from aelab.denormals import flush_denormals

__version__ = "0.1.0"

flush_denormals()  # before PyTorch starts its OpenMP threads, so they inherit it (see aelab.denormals)


def __getattr__(name: str):
    if name == "Detector":  # imported on first use: `import aelab` stays light
        from aelab.detector import Detector

        return Detector
    raise AttributeError(f"module 'aelab' has no attribute {name!r}")
