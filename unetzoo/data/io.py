"""Reading images, masks and volumes; every failure is a :class:`DataError` naming the file."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PureWindowsPath
from typing import IO, TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".ppm", ".pgm")
VOLUME_EXTENSIONS = (".nii", ".nii.gz")
EXIF_ORIENTATION = 0x0112


class DataError(ValueError):
    """A problem with a dataset file or layout; the message names the file and the problem."""


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def is_volume(path: Path) -> bool:
    return path.name.lower().endswith(VOLUME_EXTENSIONS)


def stem(path: Path) -> str:
    """The file name without its extension (``.nii.gz`` counts as one)."""
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def inside(root: Path, relative: str, source: str | os.PathLike, *, start: Path | None = None) -> Path:
    """``relative`` (as a dataset file names it: ``/`` or Windows ``\\`` separators) joined to
    ``start`` (a folder inside ``root``; default ``root``); a path that leads outside ``root`` (``../`` past it, or absolute) is a
    :class:`DataError` naming ``source``. The check is on the text of the path (links the user
    made inside the dataset are followed as usual) and its error never says whether the outside
    file exists.
    """
    text = relative.replace("\\", "/")
    if Path(text).is_absolute() or PureWindowsPath(relative).drive:
        raise DataError(f"{source}: path {relative!r} is absolute; dataset files must be inside {root}")
    offset = os.path.relpath(start, root) if start is not None else "."
    parts = Path(os.path.normpath(os.path.join(offset, text))).parts
    if parts[:1] == ("..",):
        raise DataError(f"{source}: path {relative!r} leads outside the dataset folder {root}")
    return Path(root).joinpath(*parts)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image as ``H×W×C`` (grey images get ``C = 1``), turned upright by its EXIF orientation.

    Read by PIL, which applies the EXIF orientation tag of any format that carries one (JPEG,
    PNG, WebP, TIFF), as viewers and annotation tools show the image; TIFFs that PIL cannot
    decode (float, many channels) by tifffile, as stored.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file does not exist")
    try:
        array = _read_with_pil(path)
    except Exception as exc:
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise DataError(f"{path}: unreadable or truncated image ({type(exc).__name__}: {exc})") from exc
        try:  # TIFFs PIL cannot decode (float, many channels)
            import tifffile

            array = tifffile.imread(path)
        except Exception as exc2:
            raise DataError(
                f"{path}: unreadable or truncated image ({type(exc2).__name__}: {exc2})"
            ) from exc2
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise DataError(f"{path}: expected a 2D image, got an array of shape {array.shape}")
    return array


def _read_with_pil(source: Path | IO[bytes], *, orient: bool = True) -> np.ndarray:
    from PIL import Image

    with Image.open(source) as im:
        im.load()
        if orient:
            im = upright(im)
        if im.mode in ("P", "PA"):
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGB")
        elif im.mode == "I;16":
            im = im.convert("I")
        return np.asarray(im)


def upright(im: Image.Image) -> Image.Image:
    """A PIL image turned as its EXIF orientation tag says; the image itself when it has no such tag,
    the tag is 1 (upright) or the EXIF block cannot be parsed."""
    from PIL import ImageOps

    try:
        orientation = im.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block does not make the pixels unreadable
        return im
    if orientation not in (2, 3, 4, 5, 6, 7, 8):
        return im
    return ImageOps.exif_transpose(im)


def decode_image(data: bytes, source: str | os.PathLike, *, orient: bool = False) -> np.ndarray:
    """An image held in memory (encoded bytes, e.g. a LabelMe ``imageData``) as ``H×W×C``.

    The EXIF orientation is applied only with ``orient``; errors name ``source``.
    """
    import io

    try:
        array = _read_with_pil(io.BytesIO(data), orient=orient)
    except Exception as exc:
        raise DataError(f"{source}: embedded image is not readable ({type(exc).__name__}: {exc})") from exc
    return array[..., None] if array.ndim == 2 else array


class DataWarning(UserWarning):
    """A dataset file that loads, but probably not as meant; the message names the file."""


MaskWarn = Callable[[str, str], None]
"""Receives a mask warning as ``(kind, message)``; the message does not name the file."""

CLASS_ID_MAX = 63
"""Masks whose values are all integers up to this look like class ids, not a binary encoding."""

GREY_SPREAD = 40
"""An RGB mask is grey when no pixel's channels differ by more than this (JPEG noise included)."""

MASK_MODES = ("binary", "index", "rgb")
COLOUR_MODES = ("rgb", "colour", "color")


def read_mask(
    path: str | os.PathLike,
    *,
    mode: str = "binary",
    threshold: int = 128,
    colors: Mapping[tuple[int, ...], int] | None = None,
    values: Mapping[int, int] | None = None,
    color_tolerance: float = 0,
    level: int | None = None,
    warn: MaskWarn | None = None,
) -> np.ndarray:
    """A mask as ``H×W`` uint8 class ids.

    Modes: ``binary`` (two levels at any bit depth: 0/1, 0/255, 0/1000, 0/65535, or JPEG-noisy
    values; see :func:`binary_from_grey`), ``index`` (pixel values are class ids, palette
    indices for palette images, optionally remapped by ``values``), ``rgb`` (``colors`` maps
    ``(r, g, b)`` to a class id; ``color_tolerance`` accepts colours that far per channel, see
    :func:`rgb_to_index`). A mask that does not fit its mode is a :class:`DataError` saying what
    the file holds and which mode fits; one that reads, but probably not as meant, a warning
    through ``warn`` (default: :func:`warnings.warn` with a :class:`DataWarning`).
    """
    array = read_mask_array(path, palette_index=mode == "index")
    return mask_from_array(
        array, path, mode=mode, threshold=threshold, colors=colors, values=values,
        color_tolerance=color_tolerance, level=level, warn=warn,
    )  # fmt: skip


def read_mask_array(path: str | os.PathLike, *, palette_index: bool = False) -> np.ndarray:
    """A mask file's values as stored, turned upright by its EXIF orientation.

    ``H×W`` for one channel (8-, 16- or 32-bit grey; palette indices with ``palette_index``),
    ``H×W×3`` for colour (alpha dropped; palette images by their palette colours). TIFFs PIL
    cannot decode are read by tifffile.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file does not exist")
    try:
        with Image.open(path) as im:
            im.load()
            im = upright(im)
            if im.mode in ("P", "PA") and palette_index:
                array = np.asarray(im.convert("P") if im.mode == "PA" else im)
            elif im.mode in ("1", "L", "I", "F"):
                array = np.asarray(im)
            elif im.mode.startswith("I;16"):
                array = np.asarray(im).astype(np.uint16)
            elif im.mode == "LA":
                array = np.asarray(im)[..., 0]
            else:
                array = np.asarray(im.convert("RGB"))
    except Exception:
        array = read_image(path)  # names the file in its error, or reads the TIFF
        array = array[..., 0] if array.shape[-1] < 3 else array[..., :3]
    return array.astype(np.uint8) if array.dtype == bool else array


def mask_from_array(
    array: np.ndarray,
    path: str | os.PathLike,
    *,
    mode: str = "binary",
    threshold: int = 128,
    colors: Mapping[tuple[int, ...], int] | None = None,
    values: Mapping[int, int] | None = None,
    color_tolerance: float = 0,
    level: int | None = None,
    warn: MaskWarn | None = None,
) -> np.ndarray:
    """Class ids (``H×W`` uint8) from a decoded mask image (see :func:`read_mask`)."""
    warn = warn or _warn_naming(path)
    if mode in COLOUR_MODES:
        rgb = as_rgb(array)
        if not colors:
            raise DataError(
                f"{path}: an RGB mask needs a colour → class table (colors=...); it holds "
                f"{describe_colours(rgb)} (JPEG-saved colour masks also need color_tolerance=)"
            )
        return rgb_to_index(rgb, colors, path, tolerance=color_tolerance)
    if mode not in MASK_MODES:
        raise DataError(f"{path}: unknown mask mode {mode!r}; choose binary, index or rgb")
    grey = _grey(array, path, mode)
    if mode == "binary":
        return binary_from_grey(grey, path, threshold=threshold, level=level, warn=warn)
    return index_from_grey(grey, path, values=values, warn=warn)


def _warn_naming(path: str | os.PathLike) -> MaskWarn:
    def warn(kind: str, message: str) -> None:
        warnings.warn(f"{path}: {message}", DataWarning, stacklevel=4)

    return warn


def as_rgb(array: np.ndarray) -> np.ndarray:
    """``H×W×3`` from a mask array: grey is repeated over three channels, alpha dropped."""
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=-1)
    if array.shape[-1] < 3:
        return np.repeat(array[..., :1], 3, axis=-1)
    return array[..., :3]


def is_colour(array: np.ndarray) -> bool:
    """Whether a mask array is colour-coded: some pixel's channels differ by more than ``GREY_SPREAD``."""
    if array.ndim == 2 or array.shape[-1] < 3:
        return False
    r, g, b = array[..., 0], array[..., 1], array[..., 2]  # channel by channel: reducing the short
    spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)  # last axis is slow
    return bool(spread.max(initial=0) > GREY_SPREAD)


def _grey(array: np.ndarray, path, mode: str) -> np.ndarray:
    """One channel of values from a mask array; a colour-coded mask is an error naming its colours,
    except in binary mode when it holds a single colour on black (read as that colour's brightness)."""
    if array.ndim == 2:
        return array
    if array.shape[-1] < 3:
        return array[..., 0]
    rgb = array[..., :3]
    if not is_colour(rgb):
        if rgb.dtype.kind in "ui":  # the rounded channel mean in integers: (r + g + b + 1) // 3
            wide = np.uint16 if rgb.dtype == np.uint8 else np.int64
            total = rgb[..., 0].astype(wide) + rgb[..., 1] + rgb[..., 2]
            return ((total + 1) // 3).astype(rgb.dtype)
        return np.round(rgb.mean(-1)).astype(rgb.dtype)
    if mode == "binary":
        corner = ((rgb >= 128) * np.array([4, 2, 1])).sum(-1)  # the nearest of the 8 RGB-cube corners
        counts = np.bincount(corner.ravel(), minlength=8)
        if int((counts[1:] > 0.001 * corner.size).sum()) <= 1:
            return rgb.max(-1)
    raise DataError(
        f"{path}: a colour-coded mask ({describe_colours(rgb)}), not {mode} values: pass "
        f"mask_mode='rgb' with colors={{\"#rrggbb\": id, ...}} (or a preset such as colors='suim'), "
        "or leave mask_mode unset to decide from the data"
    )


def value_counts(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of an array and how many pixels hold each, in increasing order."""
    if array.dtype == np.uint8:
        counts = np.bincount(array.ravel(), minlength=256)
        values = np.flatnonzero(counts)
        return values, counts[values]
    return np.unique(array, return_counts=True)


def _shown(values: Sequence, limit: int = 8) -> str:
    items = [f"{v:g}" if isinstance(v, float) else str(v) for v in list(values)[:limit]]
    more = f", … ({len(values)} values)" if len(values) > limit else ""
    return ", ".join(items) + more


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.3g} %"


def is_class_ids(values: np.ndarray) -> bool:
    """Whether distinct mask values look like class ids: integers from 0 up to ``CLASS_ID_MAX``."""
    return bool(values.min() >= 0 and values.max() <= CLASS_ID_MAX and np.all(values == np.round(values)))


def binary_from_grey(
    grey: np.ndarray,
    path,
    *,
    threshold: int = 128,
    level: int | None = None,
    warn: MaskWarn | None = None,
) -> np.ndarray:
    """Foreground (1) and background (0) of a one-channel binary mask.

    A mask of two values (``0/1``, ``0/255``, ``0/1000`` in 16 bits, …) has its higher value as
    foreground. A mask of more values (JPEG noise around the two levels) is foreground where
    ``value >= threshold × level / 255``: ``threshold`` is on a 0–255 scale and ``level`` is the
    foreground level (default 255, or 65535 for values above 255); a warning says when over
    5 % of the pixels lie between the levels. Values that look like class ids (``0/1/2``, or two
    non-zero values such as ``1/2``) are a :class:`DataError`: they need ``mask_mode='index'``.
    A two-level mask whose foreground differs from ``level`` (``0/1`` among ``0/255`` masks)
    reads as foreground with a warning.
    """
    warn = warn or _warn_naming(path)
    values, counts = value_counts(grey)
    if values.size == 0:
        return np.zeros(grey.shape, np.uint8)
    low, high = values[0], values[-1]
    if (values.size > 2 or (values.size == 2 and low > 0)) and is_class_ids(values):
        raise DataError(
            f"{path}: values {_shown(values.tolist())} look like class ids, not a binary mask: "
            "pass mask_mode='index' (class_names= names them)"
        )
    if values.size <= 2:
        if level is not None and high not in (0, level):
            warn("binary-level", f"foreground value {high:g} where the dataset's masks use {level}; read "
                                 f"as foreground")  # fmt: skip
        return (grey == high).astype(np.uint8) if high > 0 else np.zeros(grey.shape, np.uint8)
    scale = level or (255 if high <= 255 else 65535)
    cut = threshold * scale / 255
    middle = counts[(values > scale / 4) & (values < 3 * scale / 4)].sum() / grey.size
    if middle > 0.05:
        warn(
            "binary-spread",
            f"{_percent(middle)} of the pixels lie between the two levels (values {low:g}..{high:g}): "
            f"not a two-level mask; read as foreground where value >= {cut:g}",
        )
    return (grey >= cut).astype(np.uint8)


def index_from_grey(
    grey: np.ndarray, path, *, values: Mapping[int, int] | None = None, warn: MaskWarn | None = None
) -> np.ndarray:
    """Class ids from a one-channel mask whose values are the ids (or are mapped by ``values``).

    Negative, fractional or above-255 ids (without ``values``) are a :class:`DataError`; more
    than 64 distinct values, or ids in a JPEG file (which its compression alters), a warning.
    """
    warn = warn or _warn_naming(path)
    found, _ = value_counts(grey)
    if found.size and (found.min() < 0 or np.any(found != np.round(found))):
        raise DataError(f"{path}: values {_shown(found.tolist())} are not class ids (non-negative integers)")
    ids = np.asarray(grey).astype(np.int64)
    if values:
        return remap_labels(ids, values, path, warn=warn)
    if found.size and found.max() > 255:
        raise DataError(f"{path}: class id {found.max()} does not fit uint8; give values= to remap")
    jpeg = Path(path).suffix.lower() in (".jpg", ".jpeg")
    if found.size > 64:
        noise = " (a JPEG file: compression noise)" if jpeg else ""
        warn("many-classes", f"{found.size} distinct values ({found.min()}..{found.max()}){noise}: "
                             "implausibly many classes for class ids; pass mask_mode='binary' for a "
                             "binary mask")  # fmt: skip
    elif jpeg:
        warn("jpeg-index", f"class ids in a JPEG file are altered by its compression (values "
                           f"{_shown(found.tolist())}); save index masks as PNG")  # fmt: skip
    return ids.astype(np.uint8)


def format_colour(colour: Sequence[int]) -> str:
    """``#rrggbb`` of an ``(r, g, b)`` colour."""
    return "#" + "".join(f"{int(c):02x}" for c in colour[:3])


def _codes(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb[..., :3].astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _colour(code: int) -> tuple[int, int, int]:
    return (code >> 16) & 255, (code >> 8) & 255, code & 255


def colour_counts(rgb: np.ndarray) -> dict[tuple[int, int, int], int]:
    """Each colour of an ``H×W×3`` mask and its pixel count, most frequent first."""
    codes, counts = np.unique(_codes(rgb), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return {_colour(int(codes[i])): int(counts[i]) for i in order}


def describe_colours(rgb: np.ndarray, limit: int = 6) -> str:
    """``N colours: (r, g, b) ×count, …`` of a colour mask, most frequent first."""
    counts = colour_counts(rgb)
    shown = ", ".join(f"{c} ×{n}" for c, n in list(counts.items())[:limit])
    return f"{len(counts)} colours: {shown}{', …' if len(counts) > limit else ''}"


def rgb_to_index(
    array: np.ndarray, colors: Mapping[tuple[int, ...], int], path, *, tolerance: float = 0
) -> np.ndarray:
    """Map each RGB colour to its class id.

    With ``tolerance`` a colour not in the table takes the class of the nearest table colour
    whose every channel is within ``tolerance`` of it (per-channel distance, the largest
    channel difference); a colour with no table colour that near is a :class:`DataError`
    naming the file, the colours and their pixel counts.
    """
    rgb = as_rgb(array)
    codes, inverse, counts = np.unique(_codes(rgb).ravel(), return_inverse=True, return_counts=True)
    table = {(int(r) << 16) | (int(g) << 8) | int(b): int(cls) for (r, g, b), cls in colors.items()}
    ids = np.array([table.get(int(c), -1) for c in codes], dtype=np.int64)
    unknown = np.flatnonzero(ids < 0)
    if unknown.size and tolerance > 0:
        palette = np.array([_colour(c) for c in table], dtype=np.int64)
        seen = np.array([_colour(int(codes[i])) for i in unknown], dtype=np.int64)
        distance = np.abs(seen[:, None, :] - palette[None, :, :]).max(-1)
        nearest = distance.argmin(1)
        near = distance[np.arange(len(seen)), nearest] <= tolerance
        ids[unknown[near]] = np.array(list(table.values()), dtype=np.int64)[nearest[near]]
        unknown = unknown[~near]
    if unknown.size:
        order = unknown[np.argsort(-counts[unknown], kind="stable")]
        shown = [_colour(int(codes[i])) for i in order[:5]]
        pixels = int(counts[unknown].sum())
        each = ", ".join(str(int(counts[i])) for i in order[:5])
        where = (f"farther than color_tolerance={tolerance:g} (per channel) from every table colour"
                 if tolerance > 0 else "not in the class table")  # fmt: skip
        raise DataError(
            f"{path}: colours {where}: {shown}{' …' if unknown.size > 5 else ''} (pixels: {each}; "
            f"{pixels} of {rgb.shape[0] * rgb.shape[1]} in all, {unknown.size} colours); add them to "
            "colors= or raise color_tolerance= for JPEG-saved or noisy masks"
        )
    return ids[inverse].reshape(rgb.shape[:2]).astype(np.uint8)


def remap_labels(
    ids: np.ndarray,
    values: Mapping[int, int],
    path,
    *,
    strict: bool = False,
    warn: MaskWarn | None = None,
) -> np.ndarray:
    """Map label values to class ids; unlisted values become 0, or are an error when ``strict``.

    With ``warn``, non-zero values left unmapped are reported through it with the fraction of
    the pixels they cover.
    """
    out = np.zeros(ids.shape, dtype=np.uint8)
    if strict or warn:
        unmapped = ~np.isin(ids, np.fromiter(values, dtype=np.int64, count=len(values))) & (ids != 0)
        if unmapped.any():
            lost = np.unique(ids[unmapped]).tolist()
            if strict:
                raise DataError(f"{path}: label values not in the class table: {lost[:10]}")
            n, nonzero = int(unmapped.sum()), int((ids != 0).sum())
            warn(
                "unmapped-values",
                f"values {_shown(lost)} are not in values= and read as background: "
                f"{_percent(n / ids.size)} of the mask's pixels ({_percent(n / nonzero)} of its non-zero "
                "pixels); add them to values= (JPEG-saved masks: use mask_mode='binary')",
            )
    for value, cls in values.items():
        out[ids == value] = cls
    return out


def read_volume(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """``(array, affine, spacing)`` of a NIfTI file or a multi-page TIFF stack.

    The array keeps the file's voxel order (called D×H×W here); 4D NIfTI images keep their
    channels last. TIFF stacks get an identity affine.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file does not exist")
    try:
        if is_volume(path):
            import nibabel as nib

            img = nib.load(path)
            array = np.asanyarray(img.dataobj)
            affine = np.asarray(img.affine, dtype=np.float64)
            spacing = tuple(float(z) for z in img.header.get_zooms()[:3])
        else:
            import tifffile

            array = tifffile.imread(path)
            affine, spacing = np.eye(4), (1.0, 1.0, 1.0)
    except Exception as exc:
        raise DataError(f"{path}: unreadable or truncated volume ({type(exc).__name__}: {exc})") from exc
    if array.ndim not in (3, 4):
        raise DataError(f"{path}: expected a 3D volume, got an array of shape {array.shape}")
    return array, affine, spacing


def read_slices(paths: Sequence[Path]) -> np.ndarray:
    """A ``D×H×W×C`` volume from a sequence of 2D slice images of one size."""
    slices = [read_image(p) for p in paths]
    for p, s in zip(paths, slices, strict=True):
        if s.shape != slices[0].shape:
            raise DataError(f"{p}: slice of shape {s.shape} differs from {paths[0]} ({slices[0].shape})")
    return np.stack(slices)


def write_volume(path: str | os.PathLike, array: np.ndarray, affine: np.ndarray) -> None:
    """Write a prediction back as NIfTI with the image's affine, so it overlays the input."""
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))
