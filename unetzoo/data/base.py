"""What every dataset format shares: items listed up front, samples read on demand."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .io import DataError, DataWarning, MaskWarn


@dataclass
class Sample:
    """One image and its mask.

    ``image``: ``H×W×C`` (2D) or ``D×H×W×C`` (3D); ``mask``: ``H×W`` or ``D×H×W`` uint8 class
    ids; ``roi``: an optional boolean region-of-interest of the mask's shape (DRIVE's field
    of view); ``meta``: source paths and, for volumes, ``affine`` and ``spacing``.
    """

    id: str
    image: np.ndarray
    mask: np.ndarray | None
    roi: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Item:
    """A sample before reading: its id and files (a reader decides what they mean)."""

    id: str
    files: dict[str, Any]


@dataclass
class Problem:
    """A dataset problem: which sample, which file, what is wrong; ``level`` is ``error`` (the
    sample cannot be used as it is) or ``warning`` (it loads, but probably not as meant)."""

    id: str
    file: str
    message: str
    level: str = "error"


def natural_key(text: str) -> list:
    """Sort key that puts ``2.png`` before ``10.png``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


class SegmentationDataset(Sequence[Sample]):
    """A list of samples of one format, read lazily; ``dataset[i]`` is a :class:`Sample`.

    Subclasses list their :class:`Item` objects and implement ``read(item)``. Layout problems
    (an image without a mask, an empty folder) are errors at construction, or collected in
    ``problems`` with ``strict=False`` for ``unetzoo check-data``. ``ignore_index`` is the mask
    value of pixels that belong to no class and count nowhere (LabelMe's ``__ignore__``
    regions: 255), or ``None`` when the masks have none; training uses it when its own
    ``ignore_index`` is not given.
    """

    format = "base"
    spatial_dims = 2
    mask_encoding: str | None = None
    """How the masks are read (e.g. ``binary 0/255 (8-bit; …)``), for formats that decide it."""
    ignore_index: int | None = None

    def __init__(
        self,
        root: str | Path,
        items: list[Item],
        *,
        class_names: Sequence[str] | None = None,
        problems: list[Problem] | None = None,
        strict: bool = True,
    ) -> None:
        self.root = Path(root)
        self.items = items
        self.class_names = list(class_names) if class_names else None
        self.problems = list(problems or [])
        self.given_split: dict[str, str] = {}
        errors = [p for p in self.problems if p.level == "error"]
        if strict and errors:
            shown = "; ".join(f"{p.file}: {p.message}" for p in errors[:5])
            more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
            raise DataError(f"{self.root}: {shown}{more}")
        if strict and not items:
            raise DataError(f"{self.root}: no samples found")

    @property
    def num_classes(self) -> int | None:
        """Number of classes including background, when the class table is known."""
        return len(self.class_names) if self.class_names else None

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if isinstance(index, slice):
            raise TypeError("slice a dataset with Subset(dataset, indices)")
        sample = self.read(self.items[index])
        self.validate(sample)
        return sample

    def read(self, item: Item) -> Sample:
        raise NotImplementedError

    def validate(self, sample: Sample) -> None:
        """Raise a :class:`DataError` when the mask does not fit its image or the class table."""
        where = sample.meta.get("mask_path", sample.id)
        if sample.mask is None:
            return
        space = sample.image.shape[: self.spatial_dims]
        if sample.mask.shape != space:
            raise DataError(
                f"{where}: mask size {sample.mask.shape} differs from its image "
                f"{sample.meta.get('image_path', '')} ({space})"
            )
        if sample.roi is not None and sample.roi.shape != space:
            raise DataError(f"{sample.meta.get('roi_path')}: region-of-interest size {sample.roi.shape} "
                            f"differs from its image ({space})")  # fmt: skip
        if self.num_classes is not None:
            values = sample.mask
            if self.ignore_index is not None:
                values = values[values != self.ignore_index]
            top = int(values.max(initial=0))
            if top >= self.num_classes:
                raise DataError(
                    f"{where}: mask value {top} is outside the class table "
                    f"({self.num_classes} classes: {', '.join(self.class_names)})"
                )

    def check(self) -> list[Problem]:
        """Every problem of the dataset: layout problems and warnings about the dataset as a whole,
        then each sample read and validated, its error (any exception: the message starts with the
        exception's type unless it is a :class:`DataError`) or its warnings."""
        problems = list(self.problems) + self.warnings_for("")
        for item in self.items:
            try:
                self.validate(self.read(item))
            except DataError as exc:
                file = str(exc).split(": ", 1)[0]
                problems.append(Problem(item.id, file, str(exc).split(": ", 1)[-1]))
            except Exception as exc:
                problems.append(Problem(item.id, _file_of(item, exc), f"{type(exc).__name__}: {exc}"))
            problems += self.warnings_for(item.id)
        return problems

    def warn(self, id: str, file: str | os.PathLike, message: str, kind: str | None = None) -> None:
        """Record a warning about sample ``id`` (``""``: the dataset as a whole) and its ``file``.

        :meth:`check` returns it as a :class:`Problem` with ``level="warning"``; the first warning
        of each ``kind`` (default: the message) is also shown through :func:`warnings.warn` as a
        :class:`~unetzoo.data.io.DataWarning`, once per dataset, not once per sample.
        """
        recorded, shown = self._warning_state()
        kind = kind or message
        recorded[(id, kind)] = Problem(id, str(file), message, "warning")
        if kind not in shown:
            shown.add(kind)
            warnings.warn(f"{file}: {message}", DataWarning, stacklevel=3)

    def warner(self, id: str, file: str | os.PathLike) -> MaskWarn:
        """A ``warn(kind, message)`` callback for the mask readers that records through :meth:`warn`."""
        return lambda kind, message: self.warn(id, file, message, kind)

    def warnings_for(self, id: str) -> list[Problem]:
        """The warnings recorded so far about sample ``id`` (``""``: the dataset as a whole)."""
        recorded, _ = self._warning_state()
        return [p for (i, _), p in recorded.items() if i == id]

    def _warning_state(self) -> tuple[dict[tuple[str, str], Problem], set[str]]:
        if "_warnings" not in self.__dict__:  # formats may warn before calling __init__
            self._warnings: dict[tuple[str, str], Problem] = {}
            self._warned_kinds: set[str] = set()
        return self._warnings, self._warned_kinds

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, {len(self)} samples)"


def _file_of(item: Item, exc: Exception) -> str:
    """The file of ``item`` that an exception names, else its first file."""
    paths = [str(v) for v in item.files.values() if isinstance(v, (str, os.PathLike))]
    paths += [str(p) for v in item.files.values() if isinstance(v, (list, tuple)) for p in v
              if isinstance(p, (str, os.PathLike))]  # fmt: skip
    return next((p for p in paths if p in str(exc)), paths[0] if paths else "")


class ConcatSplits(SegmentationDataset):
    """Datasets of split folders (``train/``, ``val/``, ``test/``) as one, ids prefixed by folder.

    ``given_split`` maps each id to its split (``train``, ``val`` or ``test``).
    """

    format = "split-folders"

    def __init__(self, root: Path, parts: dict[str, SegmentationDataset]) -> None:
        self.parts = parts
        self._lookup: dict[str, tuple[SegmentationDataset, Item]] = {}
        items, problems = [], []
        for folder, part in parts.items():
            for item in part.items:
                items.append(Item(f"{folder}/{item.id}", item.files))
                self._lookup[items[-1].id] = (part, item)
            problems += [Problem(f"{folder}/{p.id}", p.file, p.message, p.level) for p in part.problems]
        first = next(iter(parts.values()))
        self.spatial_dims = first.spatial_dims
        self.ignore_index = next((p.ignore_index for p in parts.values() if p.ignore_index is not None), None)
        self.format = first.format
        encodings = {folder: part.mask_encoding for folder, part in parts.items() if part.mask_encoding}
        if len(set(encodings.values())) == 1:
            self.mask_encoding = next(iter(encodings.values()))
        elif encodings:
            self.mask_encoding = "; ".join(f"{folder}: {text}" for folder, text in encodings.items())
        _, shown = self._warning_state()
        for part in parts.values():  # each kind of warning is shown once for the whole dataset
            shown |= part._warning_state()[1]
            part._warned_kinds = shown
        super().__init__(root, items, class_names=first.class_names, problems=problems, strict=False)
        self.given_split = {item.id: split_name(item.id.split("/", 1)[0]) for item in items}
        tables = {folder: part.class_names for folder, part in parts.items()}
        if len({tuple(t or ()) for t in tables.values()}) > 1:
            shown_tables = "; ".join(f"{folder}: {t}" for folder, t in tables.items())
            self.warn("", root, f"the split folders have different class tables ({shown_tables}); the first "
                                "one is used: pass class_names= (and colors= for colour masks) to give one "
                                "table", "split-class-tables")  # fmt: skip

    def warnings_for(self, id: str) -> list[Problem]:
        """Warnings of the split folders (ids prefixed by folder) and of the whole dataset."""
        if not id:
            own = super().warnings_for("")
            return own + [Problem(folder, p.file, p.message, p.level)
                          for folder, part in self.parts.items() for p in part.warnings_for("")]  # fmt: skip
        part, inner = self._lookup[id]
        return [Problem(id, p.file, p.message, p.level) for p in part.warnings_for(inner.id)]

    def read(self, item: Item) -> Sample:
        part, inner = self._lookup[item.id]
        sample = part.read(inner)
        sample.id = item.id
        return sample

    def validate(self, sample: Sample) -> None:
        self.parts[sample.id.split("/", 1)[0]].validate(sample)


SPLIT_NAMES = {
    "train": "train", "training": "train", "tr": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test", "ts": "test",
}  # fmt: skip


def split_name(folder: str) -> str:
    """``train``, ``val`` or ``test`` for a split folder's name."""
    return SPLIT_NAMES[folder.lower()]
