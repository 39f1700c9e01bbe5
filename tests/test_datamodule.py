import numpy as np
import pytest
import torch

from aelab.data import FashionMNISTDataModule
from aelab.data.splits import seeded_split

from conftest import requires_real_data


def make(dirpath, **kw):
    kw.setdefault("val_size", 50)
    return FashionMNISTDataModule(data_dir=str(dirpath), download=False, verify=False, batch_size=32, **kw)


def test_split_sizes_and_batches(fake_data_dir):
    dm = make(fake_data_dir)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (350, 50, 200)
    batch = next(iter(dm.train_dataloader()))
    assert batch["input"].shape == (32, 1, 28, 28) and batch["input"].dtype == torch.float32
    assert 0.0 <= float(batch["input"].min()) and float(batch["input"].max()) <= 1.0
    assert batch["label"].dtype == torch.int64
    assert sum(len(b["label"]) for b in dm.val_dataloader()) == 50


def test_split_is_seeded_and_disjoint(fake_data_dir):
    a, b, c = make(fake_data_dir, seed=1), make(fake_data_dir, seed=1), make(fake_data_dir, seed=2)
    for dm in (a, b, c):
        dm.setup("fit")
    assert torch.equal(a.val_set.images, b.val_set.images)
    assert not torch.equal(a.val_set.images, c.val_set.images)
    train, val = seeded_split(100, [80, 20], seed=3)
    assert len(set(train.tolist()) | set(val.tolist())) == 100


def test_padding_and_class_subset(fake_data_dir):
    dm = make(fake_data_dir, pad_to_32=True, classes=["Trouser", 5, "Bag"], val_size=0.2)
    dm.setup("fit")
    assert dm.input_shape == (1, 32, 32)
    assert dm.class_names == ("Trouser", "Sandal", "Bag")
    batch = next(iter(dm.test_dataloader()))
    assert batch["input"].shape[1:] == (1, 32, 32)
    assert set(batch["label"].tolist()) <= {0, 1, 2}
    assert len(dm.train_set) + len(dm.val_set) == 120  # 40 images of each of the three classes


def test_bad_class_and_split_errors(fake_data_dir):
    with pytest.raises(ValueError, match="unknown class 'Jacket'"):
        make(fake_data_dir, classes=["Jacket"]).setup("fit")
    with pytest.raises(ValueError, match="val_size=10000 does not fit 400"):
        make(fake_data_dir, val_size=10_000).setup("fit")


def test_checksums_are_verified_by_default(fake_data_dir):
    from aelab.data import DataError

    dm = FashionMNISTDataModule(data_dir=str(fake_data_dir), download=False)
    with pytest.raises(DataError, match="sha256|bytes"):
        dm.setup("fit")


@requires_real_data
def test_real_fashion_mnist_datamodule():
    dm = FashionMNISTDataModule(data_dir=None, download=False)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (55000, 5000, 10000)
    counts = np.bincount(dm.test_set.labels.numpy(), minlength=10)
    assert counts.tolist() == [1000] * 10
    batch = next(iter(dm.train_dataloader()))
    assert batch["input"].shape == (128, 1, 28, 28)


def test_device_resident_data_path_on_cpu(fake_data_dir, tmp_path, capsys):
    """`device_resident=True` moves every set to the trainer's device once and draws index batches there
    (run here on the CPU, the path a GPU takes); `auto` leaves CPU training unchanged."""
    from aelab.models import CAE

    from helpers import tiny_trainer

    for flag in ("auto", True):
        dm = FashionMNISTDataModule(str(fake_data_dir), download=False, verify=False, val_size=50, batch_size=32,
                                    device_resident=flag)
        tiny_trainer(tmp_path, limit_train_batches=2, limit_val_batches=1).fit(CAE(channels=4, latent_dim=4,
                                                                                   hidden_dim=16), dm)
        if flag is True:
            assert dm.resident_device == torch.device("cpu") and dm.train_set.inputs.device.type == "cpu"
            assert "resident on cpu" in capsys.readouterr().out
            batch = next(iter(dm.train_dataloader()))
            assert batch["input"].shape == (32, 1, 28, 28) and batch["input"].dtype == torch.float32
        else:
            assert dm.resident_device is None
    with pytest.raises(ValueError, match="device_resident"):
        FashionMNISTDataModule(device_resident="gpu")
