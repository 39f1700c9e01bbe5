import pytest
import torch

from aelab.data import Fashion5DataModule, OneClassDataModule

from conftest import requires_real_data
from helpers import fashion5_kwargs


def test_fashion5_splits_remapping_and_anomalies(fake_data_dir):
    dm = Fashion5DataModule(**fashion5_kwargs(fake_data_dir, batch_size=16), anomaly_kind="both")
    dm.setup("fit")
    assert dm.class_names == ("Trouser", "Sandal", "Sneaker", "Bag", "Ankle boot")
    assert (len(dm.train_set), len(dm.val_set)) == (120 + 32, 30 + 8)
    assert int(dm.train_set.extras["labeled"].sum()) == 32 and len(dm.labeled_val_set) == 8
    assert set(dm.train_set.labels.tolist()) <= set(range(5))
    test = dm.test_set
    assert len(test) == 60 + 2 * 20
    kinds = test.extras["anomaly_type"]
    assert int((kinds == 1).sum()) == 20 and int((kinds == 2).sum()) == 20
    assert torch.equal(test.extras["anomaly"], (kinds > 0).long())
    assert (test.labels[kinds == 2] == -1).all() and (test.labels[kinds < 2] >= 0).all()
    batch = next(iter(dm.test_dataloader()))
    assert {"input", "label", "anomaly", "anomaly_type", "labeled"} <= set(batch)


def test_fashion5_is_seeded(fake_data_dir):
    a = Fashion5DataModule(**fashion5_kwargs(fake_data_dir, batch_size=16))
    b = Fashion5DataModule(**fashion5_kwargs(fake_data_dir, batch_size=16))
    c = Fashion5DataModule(**fashion5_kwargs(fake_data_dir, batch_size=16), seed=7)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.test_set.images, b.test_set.images)
    assert not torch.equal(a.test_set.images, c.test_set.images)


def test_fashion5_errors(fake_data_dir):
    with pytest.raises(ValueError, match="anomaly_kind must be one of"):
        Fashion5DataModule(data_dir=str(fake_data_dir), anomaly_kind="noise")
    dm = Fashion5DataModule(**fashion5_kwargs(fake_data_dir, num_anomalies=500))
    with pytest.raises(ValueError, match="num_anomalies=500"):
        dm.setup()


def test_one_class_mode(fake_data_dir):
    dm = OneClassDataModule(normal_classes=["Sneaker"], data_dir=str(fake_data_dir), download=False,
                            verify=False, val_size=0.25)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set)) == (30, 10)
    assert len(dm.test_set) == 200 and int(dm.test_set.extras["anomaly"].sum()) == 180


@requires_real_data
def test_fashion5_real_protocol_sizes():
    dm = Fashion5DataModule(data_dir=None, download=False, anomaly_kind="occlusion")
    dm.setup()
    assert len(dm.train_set) == 20_800 + 1_600 and len(dm.val_set) == 5_200 + 400
    assert len(dm.test_set) == 2_104 and int(dm.test_set.extras["anomaly"].sum()) == 104
