"""Where images come from: :class:`FashionMNIST` (IDX files), :class:`ImageFolder` (your photos, decoded
with Pillow and cached), :class:`IDXImages` (any IDX image file), :class:`SklearnDigits` (scikit-learn's
8x8 digits); each loads an :class:`ImageSet`. Tables are read by :mod:`aelab.data.sources.table`."""

from aelab.data.sources.base import ImageSet, ImageSource
from aelab.data.sources.digits import SklearnDigits
from aelab.data.sources.fashion_mnist import CLASS_NAMES, FashionMNIST
from aelab.data.sources.folder import ImageFolder
from aelab.data.sources.idx import IDXImages

__all__ = ["CLASS_NAMES", "FashionMNIST", "IDXImages", "ImageFolder", "ImageSet", "ImageSource", "SklearnDigits"]
