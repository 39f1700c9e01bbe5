"""aelab: autoencoder-based representation learning on images and tables with PyTorch Lightning.

Layers, each importing only from the ones above it (``tests/test_layering.py``):

* :mod:`aelab.data`: sources (Fashion-MNIST IDX files, image folders, IDX images, scikit-learn digits,
  tables) composed with protocols (classification, anomaly / one-class with OOD sets, Fashion-5, tabular);
* :mod:`aelab.nets`, :mod:`aelab.distributions`: networks and densities;
* :mod:`aelab.training`, :mod:`aelab.checkpoint`, :mod:`aelab.runs`: EMA, channels-last, progress lines;
  safe / atomic checkpoints; run folders, TensorBoard writers, batched inference;
* :mod:`aelab.models`: CAE, VAE, SemiSupervisedVAE, EncoderClassifier;
* :mod:`aelab.scoring`: anomaly scores, thresholds, the :class:`~aelab.scoring.Scorer` (model state);
* :mod:`aelab.evaluation`, :mod:`aelab.latent`: reports, computed then written;
* :mod:`aelab.commands`, :mod:`aelab.tuning`: the subcommands and Optuna studies;
* :mod:`aelab.cli`, :class:`aelab.Detector`: the command line and the Python API.
"""

from aelab.denormals import flush_denormals

__version__ = "0.1.0"

flush_denormals()  # before PyTorch starts its OpenMP threads, so they inherit it (see aelab.denormals)


def __getattr__(name: str):
    if name == "Detector":  # imported on first use: `import aelab` stays light
        from aelab.detector import Detector

        return Detector
    raise AttributeError(f"module 'aelab' has no attribute {name!r}")
