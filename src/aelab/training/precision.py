"""A warning for bfloat16 autocast on a CPU without native bfloat16 arithmetic.

``trainer.precision: bf16-mixed`` runs convolutions and matrix products in bfloat16. CPUs with
AVX512-BF16 or AMX instructions do that natively (1.6x faster per step than float32 for the few-label recipe on
this project's 2-core AVX512-BF16 machine, docs/speed.md); on others (most laptops: AVX2 only, or AVX512
without BF16) PyTorch converts every value in software, which is usually slower than float32. aelab does
not change the precision a config asks for; it warns, naming the setting to change.
"""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_warn


def native_bf16_cpu() -> bool:
    """True when this CPU has AVX512-BF16 or AMX tile instructions (PyTorch's own CPU checks)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def warn_if_slow_bf16(precision: str, device_type: str, native: bool | None = None) -> bool:
    """Warn when ``precision`` is a bfloat16 setting, the device is a CPU and the CPU
    has no native bfloat16 (``native`` overrides the check, for tests). Returns whether it warned."""
    if not str(precision).startswith("bf16") or device_type != "cpu":
        return False
    if native_bf16_cpu() if native is None else native:
        return False
    rank_zero_warn(f"trainer.precision is {precision!r} on a CPU without native bfloat16 (no AVX512-BF16 or "
                   f"AMX): bfloat16 is emulated here and usually slower than float32; add "
                   f"--trainer.precision 32-true to train in float32")
    return True
