"""Reading images, masks and volumes; every failure is a :class:`DataError` naming the file."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PureWindowsPath

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".ppm", ".pgm")
VOLUME_EXTENSIONS = (".nii", ".nii.gz")


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
    """An image as ``H×W×C`` (grey images get ``C = 1``).

    Read by PIL; TIFFs that PIL cannot decode (float, many channels) by tifffile.
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


def _read_with_pil(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode in ("P", "PA"):
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("RGB")
        elif im.mode == "I;16":
            im = im.convert("I")
        return np.asarray(im)


def read_mask(
    path: str | os.PathLike,
    *,
    mode: str = "binary",
    threshold: int = 128,
    colors: Mapping[tuple[int, ...], int] | None = None,
    values: Mapping[int, int] | None = None,
) -> np.ndarray:
    """A mask as ``H×W`` uint8 class ids.

    Modes: ``binary`` (any encoding: 0/1, 0/255, JPEG-noisy; foreground is ``>= threshold``
    on a 0–255 scale, or ``> 0`` when the mask only holds 0 and 1), ``index`` (pixel values
    are class ids, palette indices for palette PNGs, optionally remapped by ``values``),
    ``rgb`` (a colour → class table).
    """
    array = read_image(path) if mode == "rgb" else _read_grey(Path(path), palette_index=mode == "index")
    return mask_from_array(array, path, mode=mode, threshold=threshold, colors=colors, values=values)


def _read_grey(path: Path, palette_index: bool) -> np.ndarray:
    """One channel: palette indices (index masks) or luminance; TIFFs PIL cannot read via tifffile."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "P" and palette_index:
                return np.asarray(im)
            if im.mode not in ("L", "1", "I", "I;16", "F"):
                im = im.convert("L")
            return np.asarray(im)
    except FileNotFoundError:
        raise DataError(f"{path}: file does not exist") from None
    except Exception:
        return read_image(path)  # read_image names the file in its error, or reads the TIFF


def mask_from_array(
    array: np.ndarray,
    path: str | os.PathLike,
    *,
    mode: str = "binary",
    threshold: int = 128,
    colors: Mapping[tuple[int, ...], int] | None = None,
    values: Mapping[int, int] | None = None,
) -> np.ndarray:
    """Class ids from a decoded mask image (see :func:`read_mask`)."""
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]  # drop alpha
    if mode == "rgb":
        if not colors:
            raise DataError(f"{path}: an RGB mask needs a colour → class table (colors=...)")
        return rgb_to_index(array, colors, path)
    grey = array if array.ndim == 2 else array[..., 0] if array.shape[-1] == 1 else array.mean(-1)
    if mode == "binary":
        top = grey.max(initial=0)
        if top <= 1:
            return (grey > 0).astype(np.uint8)
        scale = 255.0 / 65535.0 if array.dtype == np.uint16 else 1.0
        return (grey * scale >= threshold).astype(np.uint8)
    if mode == "index":
        ids = np.asarray(grey).astype(np.int64)
        if values:
            return remap_labels(ids, values, path)
        if ids.max(initial=0) > 255:
            raise DataError(f"{path}: class id {ids.max()} does not fit uint8; give values= to remap")
        return ids.astype(np.uint8)
    raise DataError(f"{path}: unknown mask mode {mode!r}; choose binary, index or rgb")


def rgb_to_index(array: np.ndarray, colors: Mapping[tuple[int, ...], int], path) -> np.ndarray:
    """Map each RGB colour to its class id; a colour not in the table is an error naming it."""
    rgb = array[..., :3].astype(np.int64)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    table = {(int(r) << 16) | (int(g) << 8) | int(b): cls for (r, g, b), cls in colors.items()}
    out = np.zeros(code.shape, dtype=np.uint8)
    seen = np.unique(code)
    unknown = [c for c in seen.tolist() if c not in table]
    if unknown:
        shown = [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in unknown[:5]]
        raise DataError(f"{path}: colours not in the class table: {shown}")
    for c in seen.tolist():
        out[code == c] = table[c]
    return out


def remap_labels(ids: np.ndarray, values: Mapping[int, int], path, *, strict: bool = False) -> np.ndarray:
    """Map label values to class ids; unlisted values become 0, or are an error when ``strict``."""
    out = np.zeros(ids.shape, dtype=np.uint8)
    if strict:
        unknown = sorted(set(np.unique(ids).tolist()) - set(values) - {0})
        if unknown:
            raise DataError(f"{path}: label values not in the class table: {unknown[:10]}")
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
