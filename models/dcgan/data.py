"""A seeded synthetic set of 64x64 grayscale images (blobs and bars) and its DataLoader."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from models.dcgan.model import IMAGE_SIZE


def synthetic_images(
    count: int = 300, *, size: int = IMAGE_SIZE, channels: int = 1, seed: int = 0
) -> torch.Tensor:
    """Images in [-1, 1], (count, channels, size, size): a few Gaussian blobs plus a bar each.

    Structure (not noise) so that a GAN has something to learn; the note's 300 real images
    are not available.
    """
    if count < 1 or size < 4 or channels < 1:
        raise ValueError(f"need count >= 1, size >= 4, channels >= 1; got {count}, {size}, {channels}")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    axis = torch.linspace(-1.0, 1.0, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")  # (H, W) each
    blobs = 3
    centres = torch.rand(count, blobs, 2, generator=gen) * 1.4 - 0.7  # (N, K, 2)
    widths = torch.rand(count, blobs, 1, 1, generator=gen) * 0.25 + 0.08  # (N, K, 1, 1)
    dy = yy - centres[:, :, 0, None, None]  # (N, K, H, W)
    dx = xx - centres[:, :, 1, None, None]  # (N, K, H, W)
    image = torch.exp(-(dx**2 + dy**2) / (2 * widths**2)).sum(dim=1)  # (N, H, W)
    angle = torch.rand(count, 1, 1, generator=gen) * torch.pi  # (N, 1, 1)
    offset = torch.rand(count, 1, 1, generator=gen) - 0.5  # (N, 1, 1)
    distance = xx * torch.cos(angle) + yy * torch.sin(angle) - offset  # (N, H, W)
    image = image + 0.8 * torch.exp(-(distance**2) / 0.005)  # (N, H, W)
    image = image + 0.05 * torch.randn(image.shape, generator=gen)
    low = image.amin(dim=(1, 2), keepdim=True)
    high = image.amax(dim=(1, 2), keepdim=True)
    image = 2 * (image - low) / (high - low) - 1  # (N, H, W) in [-1, 1]
    return image[:, None].expand(count, channels, size, size).contiguous()  # (N, C, H, W)


class ImageSet(Dataset[torch.Tensor]):
    """A fixed tensor of images served one at a time, as a folder of PNGs would be."""

    def __init__(self, images: torch.Tensor) -> None:
        if images.dim() != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]  # (C, H, W)


def image_loader(
    batch_size: int = 32, *, count: int = 300, channels: int = 1, seed: int = 0, num_workers: int = 0
) -> DataLoader[torch.Tensor]:
    """A shuffling DataLoader over the synthetic set; the shuffle order is seeded too."""
    if batch_size < 1 or batch_size > count:
        raise ValueError(f"batch_size must be in [1, {count}] for {count} images, got {batch_size}")
    shuffle = torch.Generator(device="cpu")
    shuffle.manual_seed(seed + 1)
    dataset = ImageSet(synthetic_images(count, channels=channels, seed=seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=shuffle,
        num_workers=num_workers,
    )
