"""How a dataset's mask files encode class ids, decided from a sample of them; colour tables and presets.

A :class:`MaskEncoding` says how every mask of a dataset is read (binary, index or colour, and
with which levels, values or colours); :func:`decide_mask_encoding` makes one from the format's
options and, where they leave the choice open, from up to ``SAMPLE_SIZE`` masks spread over the
dataset.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io import (
    COLOUR_MODES,
    DataError,
    MaskWarn,
    as_rgb,
    format_colour,
    is_class_ids,
    is_colour,
    read_mask,
    read_mask_array,
    value_counts,
)

SAMPLE_SIZE = 16
"""Masks read at construction to decide a dataset's encoding, spread evenly over it."""

MAX_TABLE_COLOURS = 64
"""At most this many distinct colours in the sample make a colour table; more mean noise."""

CLUSTER_FRACTION = 0.95
"""Share of pixels within an eighth of the range of 0 or the top level: JPEG noise around two levels."""

SUIM_CLASSES: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("BW", "background_waterbody", (0, 0, 0)),
    ("HD", "human_divers", (0, 0, 255)),
    ("PF", "plants_sea_grass", (0, 255, 0)),
    ("WR", "wrecks_ruins", (0, 255, 255)),
    ("RO", "robots", (255, 0, 0)),
    ("RI", "reefs_invertebrates", (255, 0, 255)),
    ("FV", "fish_vertebrates", (255, 255, 0)),
    ("SR", "sea_floor_rocks", (255, 255, 255)),
)
"""SUIM's eight classes as ``(folder code, name, colour)``; the class id is the colour's RGB bit
code (000 black = 0, 001 blue = 1, …, 111 white = 7). From M. J. Islam et al., "Semantic
Segmentation of Underwater Imagery: Dataset and Benchmark", IROS 2020 (arXiv:2004.01241)."""

SUIM_CODES = {code: i for i, (code, _, _) in enumerate(SUIM_CLASSES)}
"""SUIM's per-class mask folder names (``FV``, ``HD``, …) → class id."""


@dataclass(frozen=True)
class ColourTable:
    """A colour → class id table, with class names when a preset brings them."""

    colors: dict[tuple[int, int, int], int]
    names: list[str] | None = None
    preset: str | None = None

    def as_json(self) -> str:
        """The table as ``-o colors=...`` takes it: ``{"#rrggbb": id, ...}``."""
        return json.dumps({format_colour(c): i for c, i in sorted(self.colors.items(), key=lambda t: t[1])})


COLOUR_PRESETS: dict[str, ColourTable] = {
    "suim": ColourTable(
        {colour: i for i, (_, _, colour) in enumerate(SUIM_CLASSES)},
        [name for _, name, _ in SUIM_CLASSES],
        "suim",
    ),
}
"""Named colour tables for ``colors=``: ``suim`` (SUIM underwater imagery, 8 classes)."""


def parse_colour(key: Any) -> tuple[int, int, int]:
    """``(r, g, b)`` from ``(r, g, b)``, ``[r, g, b]``, ``"#rrggbb"``, ``"r,g,b"`` or ``"(r, g, b)"``;
    a :class:`ValueError` for anything else."""
    if isinstance(key, str):
        text = key.strip()
        if re.fullmatch(r"#[0-9a-fA-F]{6}", text):
            return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)
        parts = re.fullmatch(r"[(\[]?\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*[)\]]?", text)
        if parts is None:
            raise ValueError(f"colour {key!r}: write '#rrggbb' or 'r,g,b'")
        key = [int(v) for v in parts.groups()]
    if (
        isinstance(key, (tuple, list))
        and len(key) == 3
        and all(isinstance(v, (int, np.integer)) for v in key)
    ):
        colour = tuple(int(v) for v in key)
        if all(0 <= v <= 255 for v in colour):
            return colour  # type: ignore[return-value]
    raise ValueError(f"colour {key!r}: write '#rrggbb', 'r,g,b' or (r, g, b) with channels 0..255")


def colour_table(
    colors: str | Mapping[Any, Any] | ColourTable | None, source: str | os.PathLike
) -> ColourTable | None:
    """A :class:`ColourTable` from what ``colors=`` accepts: a preset name (``"suim"``), or a mapping
    of colours (``(r, g, b)``, ``"#rrggbb"``, ``"r,g,b"``: the JSON forms of ``-o colors=...``) to
    class ids 0..255. A malformed table is a :class:`DataError` naming ``source``."""
    if colors is None or isinstance(colors, ColourTable):
        return colors
    if isinstance(colors, str):
        preset = COLOUR_PRESETS.get(colors.strip().lower())
        if preset is None:
            raise DataError(
                f"{source}: colors={colors!r} is not a preset ({', '.join(COLOUR_PRESETS)}); give a table "
                'such as {"#ff0000": 1, "0,255,0": 2}'
            )
        return preset
    if not isinstance(colors, Mapping) or not colors:
        raise DataError(
            f'{source}: colors= needs a preset name or a table such as {{"#ff0000": 1, "0,255,0": 2}}'
        )
    table: dict[tuple[int, int, int], int] = {}
    for key, cls in colors.items():
        try:
            colour = parse_colour(key)
        except ValueError as exc:
            raise DataError(f"{source}: colors=: {exc}") from None
        if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)) or not 0 <= int(cls) <= 255:
            raise DataError(f"{source}: colors=: class id {cls!r} of colour {key!r} is not an integer 0..255")
        if table.get(colour, cls) != cls:
            raise DataError(
                f"{source}: colors=: colour {colour} is given twice, as {table[colour]} and {cls}"
            )
        table[colour] = int(cls)
    return ColourTable(table)


def check_tolerance(colors: Mapping[tuple[int, int, int], int], tolerance: float, source) -> None:
    """A :class:`DataError` when ``tolerance`` is negative or reaches from one table colour halfway
    to another (per-channel distance), where a pixel's class would be ambiguous."""
    if tolerance < 0:
        raise DataError(f"{source}: color_tolerance={tolerance:g} is negative")
    if tolerance == 0 or len(colors) < 2:
        return
    palette = np.array(list(colors), dtype=np.int64)
    distance = np.abs(palette[:, None] - palette[None]).max(-1)
    distance[np.diag_indices(len(palette))] = 1 << 20
    i, j = np.unravel_index(distance.argmin(), distance.shape)
    if 2 * tolerance >= distance[i, j]:
        raise DataError(
            f"{source}: color_tolerance={tolerance:g} is too large: colours {tuple(palette[i].tolist())} and "
            f"{tuple(palette[j].tolist())} are {distance[i, j]} apart per channel, so a pixel between them "
            f"is ambiguous; use at most {(distance[i, j] - 1) // 2}"
        )


@dataclass
class MaskEncoding:
    """How every mask of a dataset is read.

    ``mode``: ``binary``, ``index`` or ``rgb``; ``description``: a short text for people
    (``unetzoo check-data`` prints it); ``level``: the foreground level of binary masks;
    ``sampled_max_id``: the highest class id in the sampled index masks, when the class table
    was made from them (a mask with a higher id is then an error that says so); ``notice``: a
    warning about the decision itself (a colour table built from the data).
    """

    mode: str
    description: str
    threshold: int = 128
    level: int | None = None
    values: dict[int, int] | None = None
    colors: dict[tuple[int, int, int], int] | None = None
    color_tolerance: float = 0
    class_names: list[str] | None = None
    sampled_max_id: int | None = None
    notice: str | None = None

    def read(self, path: str | os.PathLike, warn: MaskWarn | None = None) -> np.ndarray:
        """The mask at ``path`` as ``H×W`` uint8 class ids (see :func:`unetzoo.data.io.read_mask`)."""
        mask = read_mask(
            path, mode=self.mode, threshold=self.threshold, colors=self.colors, values=self.values,
            color_tolerance=self.color_tolerance, level=self.level, warn=warn,
        )  # fmt: skip
        if self.sampled_max_id is not None and mask.size and int(mask.max()) > self.sampled_max_id:
            found = ", ".join(str(v) for v in np.unique(mask)[:12].tolist())
            raise DataError(
                f"{path}: class id {int(mask.max())} (values {found}) is above the ids 0..{self.sampled_max_id} "
                "of the masks sampled to decide the encoding; pass class_names= with one name per class, "
                "or mask_mode= if this mask is encoded differently"
            )
        return mask


def sample_files(files: Sequence[Path], n: int = SAMPLE_SIZE) -> list[Path]:
    """Up to ``n`` of ``files``, spread evenly from the first to the last."""
    if len(files) <= n:
        return list(files)
    return [files[int(i)] for i in np.linspace(0, len(files) - 1, n).round()]


def normalise_mask_mode(mask_mode: str, source) -> str:
    """``auto``, ``binary``, ``index`` or ``rgb`` (``colour`` and ``color`` are ``rgb``)."""
    mode = str(mask_mode).lower()
    if mode in COLOUR_MODES:
        return "rgb"
    if mode not in ("auto", "binary", "index"):
        raise DataError(f"{source}: unknown mask_mode {mask_mode!r}; choose auto, binary, index or rgb")
    return mode


def decide_mask_encoding(
    files: Sequence[Path],
    *,
    mask_mode: str = "auto",
    threshold: int = 128,
    colors: str | Mapping[Any, Any] | None = None,
    values: Mapping[Any, Any] | None = None,
    color_tolerance: float = 0,
    class_names: Sequence[str] | None = None,
    class_folders: Sequence[str] = (),
    source: str | os.PathLike = "",
) -> MaskEncoding:
    """The encoding of the masks ``files``: the one the options name, else decided from a sample.

    ``mask_mode="auto"`` reads :func:`sample_files` and chooses ``binary`` (two values at any bit
    depth, or JPEG noise clustered near two levels), ``index`` (a few small integers, or palette
    images with colour palettes: their indices) or ``rgb`` (colour-coded masks: a colour table
    built from the colours seen, black first, with a ``notice``; the SUIM preset when
    ``class_folders`` are SUIM's and the colours too). ``colors=`` means ``rgb`` and ``values=``
    means ``index`` without sampling. Errors name ``source``.
    """
    mode = normalise_mask_mode(mask_mode, source)
    table = colour_table(colors, source)
    values = _label_values(values, source) if values else None
    names = list(class_names) if class_names else None
    if table is not None:
        if mode not in ("auto", "rgb"):
            raise DataError(f"{source}: colors= is a colour table: pass mask_mode='rgb' or leave it unset")
        check_tolerance(table.colors, color_tolerance, source)
        mode = "rgb"
    elif values and mode == "auto":
        mode = "index"
    common: dict[str, Any] = dict(threshold=threshold, color_tolerance=color_tolerance)
    if mode == "binary":
        return MaskEncoding("binary", "binary (mask_mode='binary')", class_names=names or _BINARY, **common)
    if mode == "index":
        names = names or ([f"class_{i}" for i in range(max(values.values()) + 1)] if values else None)
        text = (
            f"index, values= {_json(values)}" if values else "index (mask_mode='index'): values are class ids"
        )
        return MaskEncoding("index", text, values=values, class_names=names, **common)
    if table is not None:
        return _colour_encoding(table, names, common, given=True)
    return _detect(files, mode, names, class_folders, common)


_BINARY = ["background", "foreground"]


def _label_values(values: Mapping[Any, Any], source) -> dict[int, int]:
    """``values=`` as ``{label value: class id}`` (JSON gives string keys); a :class:`DataError` naming
    ``source`` for anything that is not whole numbers, or class ids outside 0..255."""
    try:
        table = {int(k): int(v) for k, v in dict(values).items()}
    except (TypeError, ValueError):
        raise DataError(f'{source}: values= needs whole numbers, {{label value: class id}} such as {{"255": 1}}; '
                        f"got {values!r}") from None  # fmt: skip
    if not all(0 <= v <= 255 for v in table.values()):
        raise DataError(
            f"{source}: values= maps to class ids {sorted(set(table.values()))}; class ids lie in 0..255"
        )
    return table


def _json(values: Mapping) -> str:
    return json.dumps({str(k): v for k, v in values.items()})


def _colour_encoding(table: ColourTable, names, common, *, given: bool, notice=None, why="") -> MaskEncoding:
    names = names or table.names or [f"class_{i}" for i in range(max(table.colors.values()) + 1)]
    source = (
        f"preset {table.preset!r}"
        if table.preset
        else "colors= table"
        if given
        else "table built from the data"
    )
    tolerance = common["color_tolerance"]
    within = f", colours within {tolerance:g} per channel accepted" if tolerance else ""
    text = f"colour: {len(table.colors)} colours, {source}{why}{within}"
    return MaskEncoding("rgb", text, colors=table.colors, class_names=names, notice=notice, **common)


def _detect(files: Sequence[Path], mode: str, names, class_folders: Sequence[str], common) -> MaskEncoding:
    sample = sample_files(files)
    arrays = []
    for path in sample:
        try:
            arrays.append((path, read_mask_array(path)))
        except DataError:
            continue  # check() reports the file when it reads it
    of = f"decided from {len(arrays)} of {len(files)} masks"
    if not arrays:
        if mode == "rgb":
            return MaskEncoding("rgb", "colour, no readable mask to build a colour table from", **common)
        return MaskEncoding("binary", f"binary (no readable mask among {len(sample)} sampled)",
                            class_names=names or _BINARY, **common)  # fmt: skip
    coloured = [path for path, array in arrays if is_colour(array)]
    if mode == "auto" and coloured and all(_is_palette(p) for p in coloured):
        ids = [read_mask_array(p, palette_index=True) for p, _ in arrays if _is_palette(p)]
        top = max(int(a.max(initial=0)) for a in ids)
        shown = ", ".join(str(v) for v in np.unique(np.concatenate([np.unique(a) for a in ids]))[:12])
        return MaskEncoding(
            "index", f"index: palette indices {shown} of palette images ({of})",
            class_names=names or [f"class_{i}" for i in range(top + 1)],
            sampled_max_id=None if names else top, **common,
        )  # fmt: skip
    if mode == "rgb" or coloured:
        return _decide_colours(arrays, names, class_folders, common, of)
    return _decide_grey([a for _, a in arrays], names, common, of)


def _is_palette(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.mode in ("P", "PA")
    except Exception:
        return False


def _decide_colours(arrays, names, class_folders: Sequence[str], common, of: str) -> MaskEncoding:
    codes = np.unique(np.concatenate([_codes(as_rgb(a)) for _, a in arrays]))
    seen = [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in codes.tolist()]
    suim = COLOUR_PRESETS["suim"]
    if class_folders and set(class_folders) <= set(SUIM_CODES) and set(seen) <= set(suim.colors):
        folders = ", ".join(sorted(class_folders))
        return _colour_encoding(
            suim, names, common, given=False, why=f" (SUIM class folders {folders}; {of})"
        )
    if len(seen) > MAX_TABLE_COLOURS:
        return MaskEncoding(
            "rgb", f"colour: {len(seen)} distinct colours and no colour table (JPEG-saved or noisy masks?): "
            f"pass colors= and color_tolerance= ({of})", class_names=names, **common,
        )  # fmt: skip
    black = (0, 0, 0)
    ordered = [black, *sorted(c for c in seen if c != black)]
    table = ColourTable(
        {c: i for i, c in enumerate(ordered)}, ["background", *(format_colour(c) for c in ordered[1:])]
    )
    hint = (" These are SUIM's colours: colors='suim' gives its class ids and names."
            if set(seen) <= set(suim.colors) and len(seen) >= 4 else "")  # fmt: skip
    notice = (
        f"no colour table given: built one from the {len(seen)} colours of {len(arrays)} sampled masks, "
        f"black first: {table.as_json()}. The ids depend on the colours seen; pass the table to fix them: "
        f"-o 'colors={table.as_json()}' (or colors= in Python).{hint}"
    )
    return _colour_encoding(table, names, common, given=False, notice=notice, why=f" ({of})")


def _codes(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])


def _decide_grey(arrays: list[np.ndarray], names, common, of: str) -> MaskEncoding:
    grey = [a if a.ndim == 2 else np.round(a[..., :3].mean(-1)).astype(a.dtype) for a in arrays]
    counted = [value_counts(g) for g in grey]
    values = np.unique(np.concatenate([v for v, _ in counted]))
    total = {}
    for v, c in counted:
        for value, count in zip(v.tolist(), c.tolist(), strict=True):
            total[value] = total.get(value, 0) + count
    bits = max(g.dtype.itemsize for g in grey) * 8
    depth = f"{bits}-bit" if np.issubdtype(grey[0].dtype, np.integer) else "float"
    low, high = values[0], values[-1]
    shown = ", ".join(f"{v:g}" for v in values.tolist()[:12]) + (", …" if values.size > 12 else "")
    if is_class_ids(values) and (values.size > 2 or (values.size == 2 and low > 0) or high >= 2):
        return MaskEncoding(
            "index", f"index: class ids {shown} ({depth}; {of})",
            class_names=names or [f"class_{i}" for i in range(int(high) + 1)],
            sampled_max_id=None if names else int(high), **common,
        )  # fmt: skip
    if values.size <= 2:
        text = (
            f"binary {low:g}/{high:g} ({depth}; {of})"
            if values.size == 2
            else f"binary: only {high:g} ({of})"
        )
        level = int(high) if high > 0 else None
        return MaskEncoding("binary", text, level=level, class_names=names or _BINARY, **common)
    level = 255 if high <= 255 else 65535
    cut = common["threshold"] * level / 255
    near = sum(n for v, n in total.items() if v <= level / 8 or v >= level * 7 / 8) / sum(total.values())
    if near >= CLUSTER_FRACTION:
        text = f"binary, JPEG-like noise: {values.size} values clustered near 0 and {level}"
    else:
        text = f"binary by threshold: {values.size} values from {low:g} to {high:g}, not two clean levels"
    return MaskEncoding(
        "binary", f"{text}; foreground where value >= {cut:g} ({depth}; {of})", level=level,
        class_names=names or _BINARY, **common,
    )  # fmt: skip
