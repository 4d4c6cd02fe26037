"""Built-in demo datasets: textured shapes drawn procedurally, so nothing is downloaded.

Every value comes from numpy's PCG64 integers and integer arithmetic (shapes are tested on the
pixel grid with exact integer inequalities), and the PNGs are written here with uncompressed
deflate blocks, so one seed gives byte-identical files on any machine and any zlib.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import uuid
import zlib
from pathlib import Path
from typing import Any

import numpy as np

VERSION = "1"
# Class ids 1, 2, 3 in multi-class demos; sorted, as PairedFolders orders per-class mask folders.
SHAPE_CLASSES = ("ellipse", "rectangle", "triangle")
DEMOS: dict[str, dict[str, Any]] = {
    "shapes": {"n": 160, "size": 128, "classes": 1, "seed": 0},
    "shapes-multiclass": {"n": 240, "size": 128, "classes": 3, "seed": 1},
}
DEMO_DATASETS: tuple[str, ...] = tuple(DEMOS)
MARKER = ".complete"


def make_shapes(
    root: str | os.PathLike,
    *,
    n: int = 160,
    size: int | tuple[int, int] = 128,
    classes: int = 1,
    seed: int = 0,
) -> Path:
    """Write ``n`` textured-shape images with exact masks under ``root`` and return ``root``.

    ``root/images/NNNN.png`` are ``H×W×3`` uint8 (``size`` is ``H`` or ``(H, W)``). With
    ``classes == 1`` every shape is foreground and ``root/masks/NNNN.png`` is ``H×W`` 0/255;
    with ``classes`` 2 or 3 only the first kinds of :data:`SHAPE_CLASSES` are drawn and
    ``root/masks/<kind>/NNNN.png`` holds each kind's visible pixels as 0/255, the per-class
    layout that ``open_dataset(root)`` reads as class ids 0..classes with no options.
    """
    if not 1 <= classes <= len(SHAPE_CLASSES):
        raise ValueError(f"classes must be 1..{len(SHAPE_CLASSES)}, got {classes}")
    h, w = (size, size) if isinstance(size, int) else size
    root = Path(root)
    kinds = SHAPE_CLASSES if classes == 1 else SHAPE_CLASSES[:classes]
    mask_dirs = [root / "masks"] if classes == 1 else [root / "masks" / k for k in kinds]
    for folder in [root / "images", *mask_dirs]:
        folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        image, ids = _sample(rng, h, w, len(kinds))
        name = f"{i:04d}.png"
        _write_png(root / "images" / name, image)
        if classes == 1:
            _write_png(root / "masks" / name, np.where(ids > 0, 255, 0).astype(np.uint8))
        else:
            for cls, folder in enumerate(mask_dirs, start=1):
                _write_png(folder / name, np.where(ids == cls, 255, 0).astype(np.uint8))
    return root


def demo_dataset(name: str = "shapes", *, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder of the demo dataset ``name``, generated on first use and reused after.

    The folder is ``<cache_dir>/<name>-v<VERSION>``; ``cache_dir`` defaults to
    ``$UNETZOO_CACHE/demo``, else ``~/.cache/unetzoo/demo``. It is generated in a temporary
    sibling and renamed into place, so concurrent callers (one per torchrun process) all get
    one complete folder.
    """
    if name not in DEMOS:
        raise ValueError(f"unknown demo dataset {name!r}; choose one of {', '.join(DEMO_DATASETS)}")
    if cache_dir is None:
        cache = os.environ.get("UNETZOO_CACHE")
        cache_dir = Path(cache) / "demo" if cache else Path.home() / ".cache" / "unetzoo" / "demo"
    target = Path(cache_dir) / f"{name}-v{VERSION}"
    if (target / MARKER).is_file():
        return target
    if target.exists():
        raise FileExistsError(f"{target}: an incomplete demo dataset (no {MARKER}); delete it to regenerate")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}"  # mkdir, unlike mkdtemp, honours umask
    try:
        tmp.mkdir()
        make_shapes(tmp, **DEMOS[name])
        (tmp / MARKER).write_text(json.dumps({"version": VERSION, **DEMOS[name]}) + "\n")
        try:
            os.rename(tmp, target)
        except OSError:  # another process renamed its copy first: use that one
            if not (target / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _sample(rng: np.random.Generator, h: int, w: int, kinds: int) -> tuple[np.ndarray, np.ndarray]:
    """One ``H×W×3`` uint8 image and its ``H×W`` class ids (1 + index of the shape kind)."""
    yy, xx = np.mgrid[:h, :w].astype(np.int64)
    light = _blotches(rng, h, w, cell=max(4, min(h, w) // 6), amp=28) + _ramp(rng, xx, yy, amp=40)
    background = rng.integers(60, 196, 3)
    image = background + (light + _stripes(rng, xx, yy, period=(14, 28), amp=10))[..., None]
    ids = np.zeros((h, w), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 6))):
        kind = int(rng.integers(kinds))
        inside = _shape(rng, kind, xx, yy)
        colour = background + int(rng.integers(24, 44)) + rng.integers(-12, 13, 3)
        texture = light + _stripes(rng, xx, yy, period=(4, 8), amp=int(rng.integers(12, 22)))
        image[inside] = colour + texture[inside][:, None]
        ids[inside] = kind + 1
    image += rng.integers(-10, 11, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), ids


def _direction(rng: np.random.Generator, top: int) -> tuple[int, int]:
    """A random non-zero integer vector ``(u, v)`` with ``|u|, |v| <= top``."""
    while True:
        u, v = (int(x) for x in rng.integers(-top, top + 1, 2))
        if u or v:
            return u, v


def _shape(rng: np.random.Generator, kind: int, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """The ``H×W`` bool pixels of one ellipse (0), rotated rectangle (1) or triangle (2)."""
    h, w = xx.shape
    s = min(h, w)
    dx, dy = xx - int(rng.integers(w)), yy - int(rng.integers(h))
    if kind == 2:
        r = int(rng.integers(s // 10, s // 4 + 1))
        while True:
            p = [int(v) for v in rng.integers(-r, r + 1, 2)]
            if (r * 7 // 10) ** 2 <= p[0] ** 2 + p[1] ** 2 <= r * r:
                break
        corners = []
        for _ in range(3):  # turn by ~120° (cos -1/2, sin 7/8), then jitter
            corners.append([c + int(j) for c, j in zip(p, rng.integers(-r // 4, r // 4 + 1, 2), strict=True)])
            p = [(-4 * p[0] - 7 * p[1]) // 8, (7 * p[0] - 4 * p[1]) // 8]
        sides = [
            (bx - ax) * (dy - ay) - (by - ay) * (dx - ax)
            for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1], strict=True)
        ]
        return np.all([d >= 0 for d in sides], axis=0) | np.all([d <= 0 for d in sides], axis=0)
    a, b = (int(v) for v in rng.integers(s // 16, s // 5 + 1, 2))
    u, v = _direction(rng, 4)
    along, across, norm = dx * u + dy * v, dy * u - dx * v, u * u + v * v  # rotated, scaled by sqrt(norm)
    if kind == 0:
        return along**2 * b * b + across**2 * a * a <= a * a * b * b * norm
    return (along**2 <= a * a * norm) & (across**2 <= b * b * norm)


def _stripes(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, period: tuple[int, int], amp: int
) -> np.ndarray:
    """``H×W`` triangle-wave stripes in ``[-amp, amp]``, random direction, period in ``period`` px."""
    u, v = _direction(rng, 3)
    p = int(rng.integers(*period)) * max(abs(u), abs(v))
    phase = (xx * u + yy * v + int(rng.integers(p))) % p
    return amp * (2 * np.abs(2 * phase - p) - p) // p


def _blotches(rng: np.random.Generator, h: int, w: int, cell: int, amp: int) -> np.ndarray:
    """``H×W`` smooth noise in ``[-amp, amp]``: a coarse random grid, bilinearly interpolated."""
    grid = rng.integers(-amp, amp + 1, (h // cell + 2, w // cell + 2))
    y0, fy = np.divmod(np.arange(h), cell)
    x0, fx = np.divmod(np.arange(w), cell)
    top = grid[y0][:, x0] * (cell - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (cell - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return (top * (cell - fy)[:, None] + bottom * fy[:, None]) // (cell * cell)


def _ramp(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, amp: int) -> np.ndarray:
    """``H×W`` linear illumination gradient in about ``[-amp/2, amp/2]``, random direction."""
    h, w = xx.shape
    gx, gy = _direction(rng, 1)
    return amp * (gx * (2 * xx - w) * h + gy * (2 * yy - h) * w) // (4 * h * w)


def _write_png(path: Path, array: np.ndarray) -> None:
    """Write ``H×W`` grey or ``H×W×3`` RGB uint8 as a PNG with stored (uncompressed) deflate blocks."""
    h, w = array.shape[:2]
    rows = np.concatenate([np.zeros((h, 1), np.uint8), array.reshape(h, -1)], axis=1).tobytes()
    blocks = [rows[i : i + 0xFFFF] for i in range(0, len(rows), 0xFFFF)]
    deflate = b"".join(
        struct.pack("<BHH", i == len(blocks) - 1, len(b), 0xFFFF ^ len(b)) + b for i, b in enumerate(blocks)
    )
    header = struct.pack(">IIBBBBB", w, h, 8, 2 if array.ndim == 3 else 0, 0, 0, 0)
    zdata = b"\x78\x01" + deflate + struct.pack(">I", zlib.adler32(rows))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zdata) + _chunk(b"IEND", b"")
    )


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
