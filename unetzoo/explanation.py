"""Pictures that explain a model's predictions: the library behind ``unetzoo explain``.

For each image: ``NAME_prediction.png`` (image, ground truth, prediction, error map,
probability heat map), ``NAME_attention.png`` (one panel per attention gate or CBAM spatial
attention, when the model has them) and, for volumes, ``NAME_slices.png`` (three orthogonal
slices with the masks). With ``evolution`` and a run folder: ``evolution.png``, the masks of
every kept checkpoint and of ``best/`` side by side (rows are images, columns checkpoints).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import viz
from .data.io import DataError, is_volume, read_image, read_mask, read_volume
from .evaluation import Source, probabilities_of, training_size
from .hub import model_preprocessing, read_weights
from .inference import inference_model
from .inference.attention import attention_maps
from .prediction import class_ids, collect_inputs, normalise_image, normalise_volume, output_names


@dataclass
class Case:
    """One input as the model sees it, with its ground truth when given."""

    name: str
    image: np.ndarray  # (C, *S), normalised
    truth: np.ndarray | None


def checkpoint_models(source: Source) -> list[tuple[str, nn.Module]]:
    """``(label, model)`` of every checkpoint a run kept (oldest first), then its ``best/``."""
    if source.run is None:
        raise ValueError("--evolution needs a run folder (its checkpoints are the columns)")
    found = sorted((source.run / "checkpoints").glob("step_*/model.safetensors"),
                   key=lambda p: int(p.parent.name.removeprefix("step_")))  # fmt: skip
    models, best_epoch = [], None
    for weights in found:
        model = copy.deepcopy(source.model)
        try:
            model.load_state_dict(read_weights(weights))
        except RuntimeError as exc:
            raise ValueError(f"{weights}: does not fit the run's model ({str(exc).splitlines()[0]})") from exc
        state = weights.parent / "trainer_state.json"
        info = json.loads(state.read_text()) if state.is_file() else {}
        best_epoch = info.get("best_epoch", best_epoch)
        models.append((f"epoch {info['epoch']}" if "epoch" in info else weights.parent.name, model.eval()))
    models.append(("best" if best_epoch is None else f"best (epoch {best_epoch})", source.model))
    return models


def explain_files(
    source: Source,
    inputs: Sequence[str],
    out: Path,
    *,
    masks: Sequence[str] = (),
    evolution: bool = False,
    threshold: float = 0.5,
    **opts: Any,
) -> list[Path]:
    """Write the pictures for ``inputs`` (images or NIfTI volumes) into ``out``; the written paths.

    ``masks``: ground-truth files, one per input in the same order (binary masks for
    one-channel models, class ids otherwise). ``opts``: ``tta``, ``window``, ``overlap``,
    ``blend`` as for :func:`unetzoo.inference.predict`.
    """
    files = collect_inputs(inputs)
    if masks and len(masks) != len(files):
        raise ValueError(f"--mask: {len(masks)} mask(s) for {len(files)} input(s); give one per input, in order")
    names = output_names(files, out)
    model = inference_model(source.model)
    cases = [_read(model, f, names[f], Path(masks[i]) if masks else None) for i, f in enumerate(files)]
    models = checkpoint_models(source) if evolution else []
    if evolution and not masks:
        raise ValueError("--evolution: give the ground truth with --mask (newly correct and wrong pixels need it)")
    out.mkdir(parents=True, exist_ok=True)
    size = training_size(source)
    written: list[Path] = []
    for case in cases:
        written += _explain(model, case, out, size, threshold, opts)
    if evolution:
        rows = [[class_ids(_probs(m, c, size, opts), threshold) for _, m in models] for c in cases]
        if cases[0].image.ndim == 4:  # volumes: their middle axial slice
            mids = [c.image.shape[1] // 2 for c in cases]
            images = [c.image[:, z] for c, z in zip(cases, mids, strict=True)]
            truths = [c.truth[z] for c, z in zip(cases, mids, strict=True)]
            rows = [[p[z] for p in row] for row, z in zip(rows, mids, strict=True)]
        else:
            images, truths = [c.image for c in cases], [c.truth for c in cases]
        written.append(viz.save_evolution(out / "evolution.png", images, truths, rows, [m[0] for m in models],
                                          [c.name for c in cases]))  # fmt: skip
    return written


def _read(model: nn.Module, path: Path, name: str, mask: Path | None) -> Case:
    config = getattr(model, "config", {})
    channels = int(config.get("in_channels", 3))
    spatial = int(config.get("spatial_dims", 2))
    binary = int(config.get("classes", 1)) == 1
    if is_volume(path):
        if spatial != 3:
            raise DataError(f"{path}: a volume, the model is {spatial}D")
        image = normalise_volume(read_volume(path)[0], channels, path)
        truth = None
        if mask is not None:
            truth = read_volume(mask)[0]
            truth = (truth > 0).astype(np.int64) if binary else truth.astype(np.int64)
    else:
        if spatial != 2:
            raise DataError(f"{path}: a 2D image, the model is {spatial}D")
        image = normalise_image(read_image(path), model_preprocessing(model), channels, path).numpy()
        truth = read_mask(mask, mode="binary" if binary else "index").astype(np.int64) if mask else None
    if truth is not None and truth.shape != image.shape[1:]:
        raise DataError(f"{mask}: mask of shape {truth.shape}, the input {path} is {image.shape[1:]}")
    return Case(name, image, truth)


def _probs(model: nn.Module, case: Case, size, opts) -> torch.Tensor:
    with torch.no_grad():
        return probabilities_of(model, torch.from_numpy(case.image)[None], size=size, **opts)[0].float()


def _explain(model: nn.Module, case: Case, out: Path, size, threshold: float, opts) -> list[Path]:
    probs = _probs(model, case, size, opts)
    pred = class_ids(probs, threshold)
    written = []
    volume = case.image.ndim == 4
    if volume:
        written.append(viz.save_slices(out / f"{case.name}_slices.png", case.image, pred, case.truth,
                                       title=case.name))  # fmt: skip
        z = case.image.shape[1] // 2
        image, p, shown, truth = case.image[:, z], probs[:, z].numpy(), pred[z], None
        truth = case.truth[z] if case.truth is not None else None
    else:
        image, p, shown, truth = case.image, probs.numpy(), pred, case.truth
    written.append(viz.save_prediction(out / f"{case.name}_prediction.png", image, p, shown, truth,
                                       title=case.name + (" (middle axial slice)" if volume else "")))  # fmt: skip
    maps = _attention(model, case.image)
    if maps:
        written.append(viz.save_attention(out / f"{case.name}_attention.png", image, maps,
                                          title=f"{case.name}: attention coefficients"))  # fmt: skip
    return written


def _attention(model: nn.Module, image: np.ndarray) -> dict[str, np.ndarray]:
    """Each attention map cropped to the image's part of the padded input; for volumes its middle axial slice."""
    stride = int(getattr(model, "output_stride", 1) or 1)
    spatial = image.shape[1:]
    padded = [-(-s // stride) * stride for s in spatial]
    _, maps = attention_maps(model, torch.from_numpy(image)[None])
    shown = {}
    for name, m in maps.items():
        m = m[0, 0].numpy()
        keep = tuple(slice(0, max(1, round(ms * s / p))) for ms, s, p in zip(m.shape, spatial, padded, strict=True))
        m = m[keep]
        shown[name] = m[m.shape[0] // 2] if m.ndim == 3 else m
    return shown
