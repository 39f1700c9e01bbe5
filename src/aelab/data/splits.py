"""Seeded, reproducible splits: the same ``(sizes, seed)`` always gives the same items, on any machine."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def seeded_split(n: int, sizes: Sequence[int], seed: int) -> list[torch.Tensor]:
    """Split ``range(n)`` into disjoint index tensors of the given sizes, from a seeded permutation.

    Each part is sorted. Raises:
        ValueError: if the sizes add up to more than ``n`` or one is negative.
    """
    if any(s < 0 for s in sizes) or sum(sizes) > n:
        raise ValueError(f"cannot split {n} items into parts of sizes {list(sizes)}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    out, start = [], 0
    for s in sizes:
        out.append(perm[start : start + s].sort().values)
        start += s
    return out


def count_of(size: int | float, n: int, what: str) -> int:
    """``size`` as a count out of ``n`` items: an int is a count, a float in [0, 1] a fraction (rounded).

    Raises:
        ValueError: a fraction outside [0, 1], or a count below 0 or above ``n`` (naming ``what``).
    """
    if isinstance(size, float):
        if not 0 <= size <= 1:
            raise ValueError(f"{what}={size}: a fraction must be in [0, 1]")
        return int(round(size * n))
    count = int(size)
    if not 0 <= count <= n:
        raise ValueError(f"{what}={size} does not fit {n} items")
    return count


def per_class_split(labels: torch.Tensor, sizes: Sequence[int | float], seed: int,
                    names: Sequence[str] = ("val", "test")) -> tuple[torch.Tensor, ...]:
    """Split every class of ``labels`` ``(N,)`` (``-1``, unlabeled, counts as one group) into the parts
    ``sizes`` (per class: counts, or fractions of the class) and the rest; seeded.

    Returns ``(rest, part_0, part_1, ...)`` index tensors, each sorted; the parts are disjoint.

    Raises:
        ValueError: a class too small for the parts (naming the class, its size and ``names``).
    """
    g = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(sizes) + 1)]
    for c in labels.unique().tolist():
        idx = torch.nonzero(labels == c).flatten()
        counts = [count_of(s, len(idx), f"{name} (class {c})") for s, name in zip(sizes, names)]
        if sum(counts) > len(idx):
            raise ValueError(f"class {c} has {len(idx)} items, too few for {dict(zip(names, counts))}")
        perm = idx[torch.randperm(len(idx), generator=g)]
        start = 0
        for i, k in enumerate(counts):
            parts[i + 1].append(perm[start : start + k])
            start += k
        parts[0].append(perm[start:])
    return tuple(torch.cat(p).sort().values if p else torch.zeros(0, dtype=torch.long) for p in parts)


def draw_per_class(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of ``per_class`` items of every class in ``labels`` ``(N,)``, seeded and sorted.

    Raises:
        ValueError: if a class has fewer than ``per_class`` items (naming the class and its count).
    """
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in labels.unique().tolist():
        idx = torch.nonzero(labels == c).flatten()
        if len(idx) < per_class:
            raise ValueError(f"labels_per_class={per_class} but class {c} has only {len(idx)} training images")
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.cat(chosen).sort().values


def labeled_mask(labels: torch.Tensor, labels_per_class: int | None, seed: int) -> torch.Tensor:
    """``(N,)`` bool: which training items keep their label (all if ``labels_per_class`` is None)."""
    if labels_per_class is None:
        return torch.ones(len(labels), dtype=torch.bool)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[draw_per_class(labels, labels_per_class, seed)] = True
    return mask
