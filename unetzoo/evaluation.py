"""Evaluating a trained model on a dataset: the papers' two aggregations, with TTA and windows.

``global``: the pixels of the whole set pooled, then one score (as DRIVE papers report,
within the field of view). ``per_image``: a score per image, then their mean (as Kvasir-SEG
papers report mDice / mIoU). Under several processes the per-image counts are gathered, so
the numbers equal those of one process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import is_repo_id
from .data import DataError, SegmentationDataset, open_dataset
from .data.augment import build_transform
from .data.splits import load_split
from .data.torch_dataset import TorchDataset
from .hub import create_model, from_pretrained, model_preprocessing
from .inference import inference_model, predict
from .metrics import (
    average_precision_from_pairs,
    confusion_counts,
    distance_means,
    distance_scores,
    pooled_scores,
    roc_auc_from_pairs,
    scores,
)
from .weight_tags import list_pretrained

THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))


class EvaluationError(ValueError):
    """An evaluation that cannot run as asked; the message names the option or file."""


@dataclass
class Source:
    """A model to evaluate and, when it came from a run folder, that run's options and split."""

    model: nn.Module
    run: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)


def load_source(text: str) -> Source:
    """A run folder (its ``best/``), a ``save_pretrained`` folder or file, a weight tag or a Hub repo id."""
    path = Path(text)
    if (path / "config.yaml").is_file() and (path / "best").is_dir():
        import yaml

        options = yaml.safe_load((path / "config.yaml").read_text()) or {}
        model = from_pretrained(path / "best")
        _preprocessing_from_run(model, options)
        return Source(model, path, options)
    if text in list_pretrained():
        arch, _, tag = text.partition(".")
        return Source(create_model(arch, pretrained=tag).eval())
    if path.exists() or is_repo_id(text):
        return Source(from_pretrained(text))
    raise EvaluationError(f"{text}: not a run folder, a saved model, a weight tag or a Hub repo id")


def _preprocessing_from_run(model: nn.Module, options: dict[str, Any]) -> None:
    """A run's CLAHE and 2D ``--size`` in the model's preprocessing, where its saved folder
    predates recording them."""
    info = getattr(model, "pretrained_info", None)
    if info is None:
        return
    prep = dict(info.get("preprocessing") or model_preprocessing(model))
    if options.get("clahe") and "clahe" not in prep:
        prep["clahe"] = True
    size = _run_size(model, options)
    if size and not prep.get("input_size") and len(size) == 2:
        prep["input_size"] = list(size)
    info["preprocessing"] = prep


def _run_size(model: nn.Module, options: dict[str, Any]) -> tuple[int, ...] | None:
    """A run's ``--size`` with one value repeated over the model's spatial dimensions."""
    size = options.get("size")
    if not size:
        return None
    dims = tuple(int(v) for v in str(size).lower().split("x"))
    return dims * int(model.config.get("spatial_dims", 2)) if len(dims) == 1 else dims


def fit_window(model: nn.Module, window: tuple[int, ...] | None) -> tuple[tuple[int, ...] | None, str]:
    """``window`` rounded up to a multiple of the model's stride, and a note when it changed."""
    stride = getattr(model, "output_stride", None)
    if window is None or not stride:
        return window, ""
    fitted = tuple(-(-w // stride) * stride for w in window)
    if fitted == tuple(window):
        return fitted, ""
    shown = "x".join(map(str, fitted))
    return fitted, f"--window rounded up to {shown}, a multiple of the model's stride {stride}"


def open_data(source: Source, data: str | Path, data_args: dict[str, Any] | None = None) -> SegmentationDataset:
    """``data`` opened with ``data_args``, else with the run's own format options (its labels file aside)."""
    options = dict(source.options.get("data_args") or {}) if data_args is None else dict(data_args)
    options.pop("labels", None)
    return open_dataset(data, format=source.options.get("format"), **options)


def choose_ids(dataset: SegmentationDataset, split: str, source: Source) -> list[str]:
    """``all``; ``train``/``val``/``test`` from the dataset's split folders, else the run's split.json; or a split file."""
    if split == "all":
        return dataset.ids
    if split in ("train", "val", "test"):
        if dataset.given_split:
            ids = [i for i, part in dataset.given_split.items() if part == split]
        elif source.run is not None and (source.run / "split.json").is_file():
            ids = load_split(source.run / "split.json", dataset).get(split, [])
        else:
            raise EvaluationError(f"--split {split}: {dataset.root} has no split folders and no run split.json; "
                                  "use --split all")  # fmt: skip
        if not ids:
            raise EvaluationError(f"--split {split}: no {split} samples in {dataset.root}")
        return sorted(ids)
    chosen = load_split(split, dataset)
    return sorted(chosen.get("test") or chosen["val"])


@dataclass
class Evaluation:
    """What ``evaluate`` measured: scores of both aggregations, per-image rows, the settings."""

    global_scores: dict[str, float]
    per_image_scores: dict[str, float]
    per_image: list[dict[str, Any]]
    threshold: float
    settings: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"settings": self.settings, "threshold": self.threshold, "global": self.global_scores,
                "per_image_mean": self.per_image_scores, "samples": len(self.per_image)}  # fmt: skip


def probabilities_of(model: nn.Module, image: torch.Tensor, *, size: tuple[int, ...] | None, **opts) -> torch.Tensor:
    """Probabilities at the image's own size: resized to the training ``size`` and back when given."""
    original = tuple(image.shape[2:])
    if size is not None and tuple(size) != original:
        resized = F.interpolate(image, size=size, mode="bilinear" if image.dim() == 4 else "trilinear")
        probs = predict(model, resized, **opts)
        return F.interpolate(probs, size=original, mode="bilinear" if image.dim() == 4 else "trilinear")
    return predict(model, image, **opts)


def counts_of(probs: torch.Tensor, mask: torch.Tensor, threshold: float, roi: torch.Tensor | None) -> torch.Tensor:
    """Confusion counts of thresholded (one channel) or arg-max (several) probabilities."""
    if probs.shape[1] == 1:  # p > t, written as the logit-space test of confusion_counts at 0.5
        return confusion_counts(probs - threshold, mask, mode="binary", roi=roi)
    return confusion_counts(probs, mask, mode="multiclass", roi=roi)


def evaluate(
    source: Source,
    data: str | Path,
    *,
    split: str = "auto",
    tta: str = "none",
    threshold: float | str = 0.5,
    window: tuple[int, ...] | None = None,
    overlap: float = 0.5,
    blend: str = "gaussian",
    roi: bool = False,
    data_args: dict[str, Any] | None = None,
    accelerator=None,
    progress=None,
) -> Evaluation:
    """Evaluate ``source`` on ``data``; ``threshold="auto"`` picks the best global Dice on the run's
    validation split (within the region of interest with ``roi``). The model runs as
    :func:`unetzoo.inference.inference_model` prepares it (batch norms folded).
    ``progress(0, total=N)`` is told this process's image count, then ``progress()`` after each."""
    model = inference_model(source.model)
    dataset = open_data(source, data, data_args)
    if split == "auto":
        split = "test" if "test" in set(dataset.given_split.values()) else "all"
    ids = choose_ids(dataset, split, source)
    classes = int(getattr(model, "config", {}).get("classes", 1))
    expected = 2 if classes == 1 else classes  # a one-channel model segments background and one class
    if dataset.num_classes is not None and dataset.num_classes != expected:
        raise EvaluationError(f"{data}: the dataset has {dataset.num_classes} classes "
                              f"({', '.join(dataset.class_names)}), the model {expected}")  # fmt: skip
    size = training_size(source)
    opts = dict(tta=tta, window=window, overlap=overlap, blend=blend)
    if threshold == "auto":
        threshold = _auto_threshold(source, model, size, opts, roi)
    prep = model_preprocessing(model)
    items = TorchDataset(dataset, build_transform("none", preprocessing=prep, spatial_dims=dataset.spatial_dims),
                         ids=ids)  # fmt: skip
    if roi and not any(dataset[dataset.ids.index(i)].roi is not None for i in ids[:1]):
        raise EvaluationError(f"--roi: {data} has no region-of-interest masks")
    class_names = (getattr(model, "pretrained_info", None) or {}).get("class_names")
    counts, names, pairs, distances = _run(model, items, size, opts, float(threshold), roi, accelerator, progress,
                                           class_names, dataset.ignore_index)  # fmt: skip
    mode = "binary" if classes == 1 else "multiclass"
    global_scores = scores(counts, reduction="global", class_names=class_names)
    global_scores.update(roc_auc_from_pairs(*pairs, mode=mode, class_names=class_names))
    global_scores.update(average_precision_from_pairs(*pairs, mode=mode, class_names=class_names))
    per_image_scores = scores(counts, reduction="per_image", class_names=class_names)
    per_image_scores.update({k: v for k, v in distance_means(distances).items() if not k.startswith("n_")})
    rows = []
    for i, (sample_id, c) in enumerate(zip(names, counts, strict=True)):
        row = {"id": sample_id, **scores(c, class_names=class_names)}
        row.update({k: float(v[i]) for k, v in distances.items()})
        rows.append(row)
    settings = {"model": str(getattr(model, "pretrained_info", {}).get("source", "")), "data": str(data),
                "split": split, "tta": tta, "window": list(window) if window else None, "overlap": overlap,
                "blend": blend, "roi": roi, "resized_to": list(size) if size else None,
                "processes": accelerator.num_processes if accelerator is not None else 1}  # fmt: skip
    return Evaluation(global_scores, per_image_scores, rows, float(threshold), settings)


def training_size(source: Source) -> tuple[int, ...] | None:
    """The size a model was trained at: the run's ``--size``, else the saved ``input_size``."""
    size = _run_size(source.model, source.options)
    if size is None:
        saved = model_preprocessing(source.model).get("input_size")
        return tuple(int(v) for v in saved) if saved else None
    return size


def _run(model, items: TorchDataset, size, opts, threshold: float, use_roi: bool, accelerator, progress,
         class_names, ignore_index: int | None = None):  # fmt: skip
    """Per-image counts and ids, pooled (probability, label) pairs and per-image distances, gathered.
    Pixels of the dataset's ``ignore_index`` count nowhere, as pixels outside a region of interest."""
    loader = torch.utils.data.DataLoader(items, batch_size=1, num_workers=0,
                                         collate_fn=lambda batch: batch[0])  # fmt: skip
    if accelerator is not None:
        loader = accelerator.prepare_data_loader(loader, device_placement=False)
    device = accelerator.device if accelerator is not None else next(model.parameters()).device
    model.to(device)
    counts, names, probs_list, labels_list, distances = [], [], [], [], {}
    if progress is not None:
        progress(0, total=len(loader))
    for item in loader:
        image = item["image"][None].to(device)
        probs = probabilities_of(model, image, size=size, **opts)
        roi = item["roi"][None].to(device) if use_roi and "roi" in item else None
        mask = item["mask"][None].to(device)
        roi, mask = without_ignored(mask, roi, ignore_index)
        count = counts_of(probs, mask, threshold, roi)
        mode = "binary" if probs.shape[1] == 1 else "multiclass"
        pairs = pooled_scores(probs, mask, mode=mode, roi=roi)
        labels = (probs[:, 0] > threshold).long() if mode == "binary" else probs.argmax(1)
        if roi is not None:  # outside the region of interest, neither mask has a surface
            labels, mask = labels * roi, mask * roi
        spacing = tuple(item["spacing"].tolist()) if "spacing" in item else None
        dist = distance_scores(labels.cpu(), mask.cpu(), mode=mode, num_classes=probs.shape[1],
                               spacing=spacing, class_names=class_names)  # fmt: skip
        gathered = [count, [item["id"]], [p.cpu() for p in pairs], dist]
        if accelerator is not None:
            gathered = [accelerator.gather_for_metrics(count)] + [
                accelerator.gather_for_metrics([g], use_gather_object=True) for g in gathered[1:]]  # fmt: skip
            gathered[1] = [i for ids in gathered[1] for i in ids]
        else:
            gathered[2], gathered[3] = [gathered[2]], [gathered[3]]
        counts.append(gathered[0].cpu())
        names += gathered[1]
        for p, lab in gathered[2]:
            probs_list.append(p)
            labels_list.append(lab)
        for d in gathered[3]:
            for key, value in d.items():
                distances.setdefault(key, []).append(value)
        if progress is not None:
            progress()
    pairs = (torch.cat(probs_list), torch.cat(labels_list))
    return torch.cat(counts), names, pairs, {k: torch.cat(v) for k, v in distances.items()}


def without_ignored(mask: torch.Tensor, roi: torch.Tensor | None, ignore_index: int | None):
    """``(roi, mask)`` with the ``ignore_index`` pixels taken out of the region of interest (and set
    to 0 in the mask, which no metric then sees)."""
    if ignore_index is None:
        return roi, mask
    kept = mask != ignore_index
    if not bool(kept.all()):
        mask = mask * kept
        roi = kept if roi is None else roi.bool() & kept
    return roi, mask


def _auto_threshold(source: Source, model: nn.Module, size, opts, use_roi: bool) -> float:
    """The threshold of the best global Dice over ``THRESHOLD_GRID`` on the run's validation split
    (pixels within the region of interest with ``use_roi``)."""
    if source.run is None or not (source.run / "split.json").is_file():
        raise EvaluationError("--threshold auto needs a run folder (its validation split chooses the threshold)")
    if source.model.config.get("classes", 1) != 1:
        raise EvaluationError("--threshold auto is for binary models; multi-class predictions take the arg-max")
    dataset = open_data(source, str(source.options["data"]))
    ids = load_split(source.run / "split.json", dataset)["val"]
    if not ids:
        raise DataError(f"{source.run / 'split.json'}: no validation samples to choose a threshold on")
    prep = model_preprocessing(source.model)
    items = TorchDataset(dataset, build_transform("none", preprocessing=prep), ids=ids)
    probs, masks = [], []
    for i in range(len(items)):
        item = items[i]
        with torch.no_grad():
            p = probabilities_of(model, item["image"][None], size=size, **opts).cpu().flatten()
        roi, m = without_ignored(item["mask"], item["roi"] if use_roi and "roi" in item else None,
                                 dataset.ignore_index)  # fmt: skip
        m = m.flatten()
        if roi is not None:
            inside = roi.flatten().bool()
            p, m = p[inside], m[inside]
        probs.append(p)
        masks.append(m)
    p, m = torch.cat(probs), torch.cat(masks).bool()
    best = max(THRESHOLD_GRID, key=lambda t: _dice(p > t, m))
    return float(best)


def _dice(pred: torch.Tensor, truth: torch.Tensor) -> float:
    tp = (pred & truth).sum().item()
    return 2 * tp / max(pred.sum().item() + truth.sum().item(), 1)
