"""The plain classification protocol on any image source, and its two ready-made forms:
:class:`FashionMNISTDataModule` (Fashion-MNIST) and :class:`ImageFolderDataModule` (a folder of your
images)."""

from __future__ import annotations

from aelab.data.datasets import InMemoryDataset
from aelab.data.protocols.base import all_true
from aelab.data.protocols.images import ImageDataModule, class_indices
from aelab.data.sources.base import TEST, TRAIN, ImageSource
from aelab.data.sources.fashion_mnist import FashionMNIST
from aelab.data.sources.folder import ImageFolder
from aelab.data.splits import labeled_mask


class ClassificationDataModule(ImageDataModule):
    """Classification on an image source: a training / validation split of the training part and the
    test part (see :mod:`aelab.data.protocols.images` for how the parts are drawn).

    Args:
        source: the images (:mod:`aelab.data.sources`).
        classes: keep only these classes (names or ids), relabelled ``0..k-1`` in this order (default:
            all classes of the source).
        labels_per_class: keep the labels of only this many training images per class (a seeded
            draw); the other training images stay in the training set as unlabeled images
            (``"labeled"`` false). ``None``: every training image is labeled. The validation and
            test sets stay fully labeled (for monitoring and evaluation; selecting checkpoints on
            many validation labels when training with few labels is optimistic, which is why
            ``benchmarks/few_labels.py`` trains for a fixed budget and uses no validation set).
        (other arguments: see :class:`~aelab.data.protocols.images.ImageDataModule`)

    Batches: ``{"input": (B, C, H, W) float32 in [0, 1], "label": (B,) int64, "labeled": (B,) bool}``.
    """

    def __init__(self, source: ImageSource, classes: list[int | str] | None = None,
                 labels_per_class: int | None = None, val_size: int | float = 0.1, test_size: int | float = 0.2,
                 pad_to: int | None = None, batch_size: int = 128, labeled_batch_size: int | None = None,
                 labeled_only: bool = False, seed: int = 42, num_workers: int = 0,
                 device_resident: bool | str = "auto") -> None:
        super().__init__(source, val_size=val_size, test_size=test_size, pad_to=pad_to, batch_size=batch_size,
                         seed=seed, num_workers=num_workers, labeled_batch_size=labeled_batch_size,
                         labeled_only=labeled_only, device_resident=device_resident)
        self.labels_per_class = labels_per_class
        self.classes_arg = classes
        self._classes: list[int] | None = None

    @property
    def classes(self) -> list[int]:
        """Ids of the chosen classes in the source."""
        if self._classes is None:
            names = self.source_classes()
            self._classes = (class_indices(self.classes_arg, names) if self.classes_arg is not None
                             else list(range(len(names))))
        return self._classes

    @property
    def class_names(self) -> tuple[str, ...]:  # type: ignore[override]
        names = self.source_classes()
        return tuple(names[c] for c in self.classes)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels, _ = self.select(self.classes, TRAIN)
        if len(images) == 0:
            raise ValueError(f"no training images of classes {list(self.class_names)} in {self.source.describe()}")
        train_idx, val_idx = self.split_val(labels)
        labeled = labeled_mask(labels[train_idx], self.labels_per_class, self.seed + 5)
        self.train_set = InMemoryDataset(images[train_idx], labels[train_idx], {"labeled": labeled}, pad=self.pad)
        self.labeled_train_set = InMemoryDataset(images[train_idx][labeled], labels[train_idx][labeled],
                                                 {"labeled": labeled[labeled]}, pad=self.pad)
        self.val_set = InMemoryDataset(images[val_idx], labels[val_idx], {"labeled": all_true(len(val_idx))},
                                       pad=self.pad)
        self.test_set = self.make_test_set()

    def make_test_set(self) -> InMemoryDataset:
        """The test part of the chosen classes."""
        images, labels, names = self.select(self.classes, TEST)
        return InMemoryDataset(images, labels, {"labeled": all_true(len(images))}, pad=self.pad, names=names)


class FashionMNISTDataModule(ClassificationDataModule):
    """Fashion-MNIST classification: a seeded train/validation split of the 60,000 training images and the
    official 10,000-image test set, all in memory as uint8 and converted per batch.

    Args:
        data_dir, download, verify: where the IDX files are (see :class:`aelab.data.sources.FashionMNIST`).
        val_size: validation images taken from the training set (int), or a fraction (float).
        pad_to_32: zero-pad 28x28 images to 32x32 pixels.
        (other arguments: see :class:`ClassificationDataModule`)

    Batches: ``{"input": (B, 1, 28, 28) float32 in [0, 1] (32x32 if padded), "label": (B,) int64,
    "labeled": (B,) bool}``.
    """

    def __init__(self, data_dir: str | None = "data", download: bool = True, verify: bool = True,
                 val_size: int | float = 5000, pad_to_32: bool = False, classes: list[int | str] | None = None,
                 labels_per_class: int | None = None, batch_size: int = 128, labeled_batch_size: int | None = None,
                 labeled_only: bool = False, seed: int = 42, num_workers: int = 0,
                 device_resident: bool | str = "auto") -> None:
        super().__init__(FashionMNIST(data_dir, download, verify), classes=classes, labels_per_class=labels_per_class,
                         val_size=val_size, pad_to=32 if pad_to_32 else None, batch_size=batch_size,
                         labeled_batch_size=labeled_batch_size, labeled_only=labeled_only, seed=seed,
                         num_workers=num_workers, device_resident=device_resident)
        self.data_dir, self.download, self.verify = data_dir, download, verify


class ImageFolderDataModule(ClassificationDataModule):
    """Your own images: a folder with one sub-folder per class (torchvision's ImageFolder layout), or a
    flat folder of unlabeled images; decoded once with Pillow into memory (and a disk cache), split per
    class into training / validation / test parts (seeded).

    Args:
        root: the folder.
        image_size: output size, ``S`` (square) or ``[H, W]``.
        channels: 1 (grey) or 3 (RGB); every image is converted.
        resize: ``stretch`` (to the size, ignoring the aspect ratio), ``center_crop`` (scale the short
            side, crop the middle) or ``pad`` (scale the long side, pad with black); antialiased.
        cache_dir: folder of the decoded-image cache (``None``: no cache).
        decode_workers: processes that decode images on the first run.
        on_error: ``raise`` (an undecodable file is an error naming it) or ``skip`` (a warning with the
            count and the first names).
        val_size, test_size: per class, counts or fractions (see :class:`ImageDataModule`).
        (other arguments: see :class:`ClassificationDataModule`)
    """

    def __init__(self, root: str, image_size: int | list[int] = 64, channels: int = 3, resize: str = "stretch",
                 cache_dir: str | None = ".cache/aelab", decode_workers: int = 2, on_error: str = "raise",
                 classes: list[int | str] | None = None, labels_per_class: int | None = None,
                 val_size: int | float = 0.1, test_size: int | float = 0.2, batch_size: int = 128,
                 labeled_batch_size: int | None = None, labeled_only: bool = False, seed: int = 42,
                 num_workers: int = 0,
                 device_resident: bool | str = "auto") -> None:
        source = ImageFolder(root, image_size=image_size, channels=channels, resize=resize, cache_dir=cache_dir,
                             num_workers=decode_workers, on_error=on_error)
        super().__init__(source, classes=classes, labels_per_class=labels_per_class, val_size=val_size,
                         test_size=test_size, batch_size=batch_size, labeled_batch_size=labeled_batch_size,
                         labeled_only=labeled_only, seed=seed, num_workers=num_workers, device_resident=device_resident)
