"""Dimension-generic layer factories.

Every block in :mod:`unetzoo.blocks` builds its layers through these functions, so the
same block code serves 2D (``spatial_dims=2``) and 3D (``spatial_dims=3``) networks and
norms/activations are chosen by name.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_MAXPOOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVGPOOL = {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_DROPOUT = {2: nn.Dropout2d, 3: nn.Dropout3d}
_BATCHNORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCENORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}

NORMS = ("batch", "instance", "group", "none")
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leakyrelu": lambda: nn.LeakyReLU(0.01, inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
    "prelu": nn.PReLU,
    "none": nn.Identity,
}


def check_spatial_dims(spatial_dims: int) -> int:
    """Return ``spatial_dims`` if it is 2 or 3, else raise a ``ValueError``."""
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    return spatial_dims


def conv(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    dilation: int = 1,
    bias: bool = True,
) -> nn.Module:
    """A 2D/3D convolution with 'same' padding for odd kernels: ``(N, in, *S) -> (N, out, *S/stride)``."""
    padding = dilation * (kernel_size - 1) // 2
    return _CONV[check_spatial_dims(spatial_dims)](
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        bias=bias,
    )


def conv_transpose(spatial_dims: int, in_channels: int, out_channels: int) -> nn.Module:
    """A stride-2 transposed convolution that doubles every spatial size."""
    return _CONV_T[check_spatial_dims(spatial_dims)](in_channels, out_channels, 2, stride=2)


def norm(name: str, spatial_dims: int, channels: int) -> nn.Module:
    """A normalisation layer by name: ``batch``, ``instance``, ``group`` (8 groups or fewer) or ``none``."""
    key = name.lower()
    if key == "batch":
        return _BATCHNORM[check_spatial_dims(spatial_dims)](channels)
    if key == "instance":
        return _INSTANCENORM[check_spatial_dims(spatial_dims)](channels, affine=True)
    if key == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if key == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {name!r}; choose one of {', '.join(NORMS)}")


def act(name: str) -> nn.Module:
    """An activation layer by name (see ``ACTIVATIONS``)."""
    try:
        return ACTIVATIONS[name.lower()]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None


def max_pool(spatial_dims: int) -> nn.Module:
    """A 2×2 (2×2×2) max pooling that halves every spatial size."""
    return _MAXPOOL[check_spatial_dims(spatial_dims)](2)


def global_avg_pool(spatial_dims: int) -> nn.Module:
    """Adaptive average pooling to a single voxel: ``(N, C, *S) -> (N, C, 1, ...)``."""
    return _AVGPOOL[check_spatial_dims(spatial_dims)](1)


def dropout(spatial_dims: int, p: float) -> nn.Module:
    """Channel dropout with probability ``p``; an identity when ``p == 0``."""
    return _DROPOUT[check_spatial_dims(spatial_dims)](p) if p > 0 else nn.Identity()


def resize_to(x: Tensor, size: tuple[int, ...] | list[int], mode: str = "nearest") -> Tensor:
    """Resample ``x`` to the spatial ``size``; ``mode`` is ``nearest`` or ``linear``.

    ``linear`` means bilinear in 2D and trilinear in 3D. Returns ``x`` itself when the size
    already matches.
    """
    if tuple(x.shape[2:]) == tuple(size):
        return x
    if mode == "nearest":
        return F.interpolate(x, size=size, mode="nearest")
    interp = "bilinear" if x.dim() == 4 else "trilinear"
    return F.interpolate(x, size=size, mode=interp, align_corners=False)
