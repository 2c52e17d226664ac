"""Seeded synthetic inputs for PaCo-2: raw part features and two-view image batches."""

from __future__ import annotations

import torch


def _generator(seed: int) -> torch.Generator:
    # A private CPU generator keeps the global RNG untouched and makes data device-independent.
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    return gen


def part_features(
    batch: int,
    parts: int,
    dim: int,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    requires_grad: bool = True,
    num_classes: int = 4,
) -> dict[str, torch.Tensor]:
    """Two views of K part features per sample, view 2 a shuffled noisy copy of view 1.

    Returns z1, z2 (B, K, d) leaves, labels (B,) and perm (B, K): the view-2 index that
    each view-1 part was copied to, i.e. the ground-truth match.
    """
    if batch < 1 or parts < 2 or dim < 1:
        raise ValueError(f"need batch >= 1, parts >= 2, dim >= 1; got {batch}, {parts}, {dim}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    gen = _generator(seed)
    labels = torch.randint(num_classes, (batch,), generator=gen)  # (B,)
    centres = torch.randn(num_classes, dim, generator=gen, dtype=torch.float64)  # (C, d)
    # Independent Gaussian parts are affinely independent with probability one, so the
    # K - 1 non-trivial covariance directions are well separated from the eps floor.
    z1 = centres[labels].unsqueeze(1) + torch.randn(
        batch, parts, dim, generator=gen, dtype=torch.float64
    )  # (B, K, d)
    shuffle = torch.stack([torch.randperm(parts, generator=gen) for _ in range(batch)])  # (B, K)
    noise = 0.05 * torch.randn(batch, parts, dim, generator=gen, dtype=torch.float64)
    rows = torch.arange(batch).unsqueeze(-1)  # (B, 1)
    z2 = z1[rows, shuffle] + noise  # (B, K, d); z2[b, j] copies z1[b, shuffle[b, j]]
    perm = shuffle.argsort(dim=-1)  # (B, K)
    z1 = z1.to(device=device, dtype=dtype).requires_grad_(requires_grad)
    z2 = z2.to(device=device, dtype=dtype).requires_grad_(requires_grad)
    return {"z1": z1, "z2": z2, "labels": labels.to(device), "perm": perm.to(device)}


def _augment(images: torch.Tensor, gen: torch.Generator, max_shift: int) -> torch.Tensor:
    """Random horizontal flip, circular shift and pixel noise per sample: (B, 3, H, W)."""
    views = []
    for image in images:
        if bool(torch.rand((), generator=gen) < 0.5):
            image = image.flip(-1)
        shift = torch.randint(-max_shift, max_shift + 1, (2,), generator=gen)
        image = image.roll(shifts=(int(shift[0]), int(shift[1])), dims=(-2, -1))
        views.append(image + 0.1 * torch.randn(image.shape, generator=gen, dtype=image.dtype))
    return torch.stack(views)


def image_batch(
    batch: int,
    *,
    seed: int = 0,
    image_size: int = 32,
    num_classes: int = 4,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Class-patterned RGB images and two augmented views: x1, x2 (B, 3, H, W), labels (B,)."""
    if batch < 1 or image_size < 4 or num_classes < 1:
        raise ValueError(
            f"need batch >= 1, image_size >= 4, num_classes >= 1; got {batch}, {image_size}, {num_classes}"
        )
    gen = _generator(seed)
    labels = torch.randint(num_classes, (batch,), generator=gen)  # (B,)
    # Coarse 4x4 colour blocks per class give the classifier something learnable.
    coarse = torch.randn(num_classes, 3, 4, 4, generator=gen, dtype=torch.float64)  # (C, 3, 4, 4)
    patterns = torch.nn.functional.interpolate(coarse, size=(image_size, image_size))
    images = patterns[labels] + 0.5 * torch.randn(
        batch, 3, image_size, image_size, generator=gen, dtype=torch.float64
    )  # (B, 3, H, W)
    max_shift = max(1, image_size // 16)
    x1 = _augment(images, gen, max_shift)  # (B, 3, H, W)
    x2 = _augment(images, gen, max_shift)  # (B, 3, H, W)
    return {
        "x1": x1.to(device=device, dtype=dtype),
        "x2": x2.to(device=device, dtype=dtype),
        "labels": labels.to(device),
    }
