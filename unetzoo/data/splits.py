"""Train/val/test splits: given folders, a seeded ratio split, or k-fold; saved to a JSON file.

A saved split names every sample id, how it was made and from which dataset, so a later
run reuses exactly the same samples (:func:`load_split` checks the ids still exist).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write
from .base import SegmentationDataset
from .io import DataError

Split = dict[str, list[str]]


def ratio_split(ids: Sequence[str], *, val: float = 0.2, test: float = 0.0, seed: int = 0) -> Split:
    """Shuffle ``ids`` with ``seed`` and cut ``val`` and ``test`` fractions off (each at least one id when > 0)."""
    if not 0 <= val < 1 or not 0 <= test < 1 or val + test >= 1:
        raise ValueError(f"val={val} and test={test} must be fractions that leave some training data")
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    n_test = max(1, round(test * len(order))) if test else 0
    n_val = max(1, round(val * len(order))) if val else 0
    return {
        "train": sorted(order[n_test + n_val :]),
        "val": sorted(order[n_test : n_test + n_val]),
        "test": sorted(order[:n_test]),
    }


def kfold_split(ids: Sequence[str], *, k: int = 5, fold: int = 0, seed: int = 0) -> Split:
    """Fold ``fold`` of a seeded ``k``-fold split: that fold is ``val``, the rest ``train``."""
    if not 2 <= k <= len(ids) or not 0 <= fold < k:
        raise ValueError(
            f"k-fold needs 2 <= k <= {len(ids)} samples and 0 <= fold < k; got k={k}, fold={fold}"
        )
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    val = order[fold::k]
    return {"train": sorted(set(order) - set(val)), "val": sorted(val), "test": []}


def given_split(dataset: SegmentationDataset, *, val: float = 0.0, seed: int = 0) -> Split:
    """The split of the dataset's own folders; ``val`` carves a validation part off ``train`` if none is given."""
    if not dataset.given_split:
        raise DataError(f"{dataset.root}: no split folders (train/, val/, test/) to take a split from")
    split: Split = {"train": [], "val": [], "test": []}
    for sample_id, part in dataset.given_split.items():
        split[part].append(sample_id)
    if not split["val"] and val:
        carved = ratio_split(split["train"], val=val, seed=seed)
        split["train"], split["val"] = carved["train"], carved["val"]
    return {k: sorted(v) for k, v in split.items()}


def make_split(
    dataset: SegmentationDataset,
    method: str = "auto",
    *,
    val: float = 0.2,
    test: float = 0.0,
    k: int = 5,
    fold: int = 0,
    seed: int = 0,
) -> Split:
    """A split by ``method``: ``given`` (split folders), ``ratio``, ``kfold``, or ``auto`` (given if any, else ratio)."""
    if method == "auto":
        method = "given" if dataset.given_split else "ratio"
    if method == "given":
        return given_split(dataset, val=val, seed=seed)
    if method == "ratio":
        return ratio_split(dataset.ids, val=val, test=test, seed=seed)
    if method == "kfold":
        return kfold_split(dataset.ids, k=k, fold=fold, seed=seed)
    raise ValueError(f"unknown split method {method!r}; choose auto, given, ratio or kfold")


def save_split(path: str | os.PathLike, split: Split, **info: Any) -> Path:
    """Write ``split`` (and how it was made: ``info``) as JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"split": split, **info}, indent=2) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return path


def load_split(path: str | os.PathLike, dataset: SegmentationDataset | None = None) -> Split:
    """Read a saved split; with ``dataset``, every id must still be one of its samples."""
    path = Path(path)
    try:
        split = json.loads(path.read_text())["split"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a readable split file ({exc})") from exc
    if dataset is not None:
        known = set(dataset.ids)
        missing = sorted({i for ids in split.values() for i in ids} - known)
        if missing:
            raise DataError(f"{path}: {len(missing)} ids are not in {dataset.root}, e.g. {missing[:5]}")
    return split
