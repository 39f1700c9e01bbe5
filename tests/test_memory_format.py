"""The channels-last callback: same results up to rounding, weights and batches in channels-last order."""

import lightning.pytorch as pl
import pytest
import torch

from aelab.models import CAE
from aelab.training import ChannelsLast, warn_if_slow_bf16
from aelab.training.memory_format import to_channels_last


def test_to_channels_last_converts_image_tensors_in_nested_batches():
    batch = {"input": torch.rand(2, 3, 8, 8), "label": torch.zeros(2), "labeled": {"input": torch.rand(2, 3, 8, 8)}}
    out = to_channels_last(batch)
    assert out["input"].is_contiguous(memory_format=torch.channels_last)
    assert out["labeled"]["input"].is_contiguous(memory_format=torch.channels_last)
    assert out["label"].shape == (2,)


def test_channels_last_training_matches_the_default_layout(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(16, 3, 16, 16)
    loader = torch.utils.data.DataLoader([{"input": x[i]} for i in range(16)], batch_size=8)

    def make():
        torch.manual_seed(0)
        return CAE(input_shape=(3, 16, 16), channels=4, latent_dim=4, hidden_dim=16, num_stages=2, log_images=0)

    def fit(callbacks):
        model = make()
        trainer = pl.Trainer(max_epochs=1, callbacks=callbacks, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
        trainer.fit(model, loader)
        return model

    plain, fast = fit([]), fit([ChannelsLast()])
    assert any(not torch.equal(a, b) for a, b in zip(make().parameters(), plain.parameters()))  # it trained
    conv = next(m for m in fast.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(plain.parameters(), fast.parameters()):
        assert torch.allclose(a, b, atol=1e-5), "two steps in channels-last must give the same weights up to rounding"


def test_bf16_warning_only_for_cpus_without_native_bf16():
    """bfloat16 autocast on a CPU that emulates it is slower than float32: one warning naming the fix."""
    with pytest.warns(UserWarning, match="--trainer.precision 32-true"):
        assert warn_if_slow_bf16("bf16-mixed", "cpu", native=False)
    assert not warn_if_slow_bf16("bf16-mixed", "cpu", native=True)
    assert not warn_if_slow_bf16("32-true", "cpu", native=False)
    assert not warn_if_slow_bf16("bf16-mixed", "cuda", native=False)
