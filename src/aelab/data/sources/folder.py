"""Image folders as a source (to be completed: see ImageFolder)."""

from __future__ import annotations

from aelab.data.sources.base import ImageSet, ImageSource
from aelab.data.sources.decode import check_options


class ImageFolder(ImageSource):
    """A folder with one sub-folder per class, or a flat folder of unlabeled images (label -1)."""

    def __init__(self, root: str, image_size: int | list[int] = 64, channels: int = 3, resize: str = "stretch",
                 cache_dir: str | None = ".cache/aelab", num_workers: int = 2, on_error: str = "raise") -> None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.size = check_options(channels, size, resize)
        self.root, self.channels, self.resize = root, channels, resize
        self.cache_dir, self.num_workers, self.on_error = cache_dir, num_workers, on_error

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    def load(self) -> ImageSet:
        raise NotImplementedError
