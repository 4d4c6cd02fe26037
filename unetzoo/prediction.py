"""Predicting masks for files: images and NIfTI volumes in, class-id masks (and extras) out.

The library behind ``unetzoo predict``: :func:`predict_files` expands the inputs (files,
folders, glob patterns), normalises each image as the model was trained, predicts through
:func:`unetzoo.inference.predict` (TTA, sliding windows, a run's training size) and writes one
mask per input. A file that cannot be read is reported and skipped; the others go on.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import viz
from .data.augment import clahe_transform
from .data.base import natural_key
from .data.io import DataError, is_image, is_volume, read_image, stem
from .data.torch_dataset import zscore
from .evaluation import Source, probabilities_of, training_size
from .hub import model_preprocessing
from .inference import inference_model


@dataclass
class PredictionReport:
    """What :func:`predict_files` did: the files it wrote and the inputs it skipped, with why."""

    inputs: int = 0
    written: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)


def is_input(path: Path) -> bool:
    """An image ``read_image`` reads or a NIfTI volume."""
    return path.is_file() and (is_volume(path) or is_image(path))


def collect_inputs(inputs: Sequence[str]) -> list[Path]:
    """Files, folders (their images and volumes, natural order, not recursive) and glob patterns,
    each file once; an input that matches nothing is a ``ValueError`` naming it."""
    files: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = sorted((p for p in path.iterdir() if is_input(p)), key=lambda p: natural_key(p.name))
        elif path.is_file():
            if not (is_volume(path) or is_image(path)):
                raise ValueError(f"{text}: not an image or a NIfTI volume")
            found = [path]
        elif glob.has_magic(text):
            matches = (Path(p) for p in glob.glob(text))
            found = sorted((p for p in matches if is_input(p)), key=lambda p: natural_key(str(p)))
        else:
            found = []
        if not found:
            raise ValueError(f"{text}: matches no image or volume")
        files += found
    unique: dict[Path, Path] = {}
    for f in files:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def output_names(files: Sequence[Path], out: Path) -> dict[Path, str]:
    """The output stem of each input; refuses an ``out`` that holds inputs and two inputs of one stem."""
    target = out.resolve()
    names: dict[Path, str] = {}
    owner: dict[str, Path] = {}
    for f in files:
        if f.resolve().parent == target:
            raise ValueError(f"--out {out}: holds the input {f}; predictions would mix with (or overwrite) "
                             "the inputs, choose another folder")  # fmt: skip
        name = stem(f)
        if name in owner:
            raise ValueError(f"{f} and {owner[name]} would both write {out / name}.*; predict them apart")
        owner[name], names[f] = f, name
    return names


def normalise_image(image: np.ndarray, prep: dict[str, Any], channels: int, path: Path) -> torch.Tensor:
    """An ``H×W×C`` image as the model's ``(C, H, W)`` float input: ``x * scale``, then
    ``(x - mean) / std`` per channel, after CLAHE when the model was trained with it
    (``prep["clahe"]``). An alpha channel is dropped; other channel counts that differ from
    the model's are a :class:`DataError`."""
    if image.shape[-1] == channels + 1 and channels in (1, 3):
        image = image[..., :channels]  # alpha
    if image.shape[-1] != channels:
        raise DataError(f"{path}: has {image.shape[-1]} channels, the model takes {channels}")
    if prep.get("clahe"):  # as the training pipeline applied it (unetzoo.data.augment.build_transform)
        if image.dtype != np.uint8:
            raise DataError(f"{path}: a {image.dtype} image; the model was trained with CLAHE, which takes 8-bit images")
        image = clahe_transform()(image=image)["image"]
    x = image.astype(np.float32) * float(prep.get("scale", 1 / 255))
    mean = np.asarray(prep.get("mean") or [0.0] * channels, dtype=np.float32)
    std = np.asarray(prep.get("std") or [1.0] * channels, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis((x - mean) / std, -1, 0)))


def normalise_volume(array: np.ndarray, channels: int, path: Path) -> np.ndarray:
    """A ``D×H×W`` (or ``D×H×W×C``) volume as the model's ``(C, D, H, W)`` float32 input,
    z-scored over the whole volume as in training; another channel count than the model's
    is a :class:`DataError`."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] != channels:
        raise DataError(f"{path}: shape {array.shape}, the model takes {channels} channel(s) "
                        "(a 3D volume, or 4D with channels last)")  # fmt: skip
    return np.ascontiguousarray(np.moveaxis(zscore(array), -1, 0))


def class_ids(probs: torch.Tensor, threshold: float) -> np.ndarray:
    """``(C, *S)`` probabilities as ``*S`` class ids: ``p > threshold`` for one channel, else the
    arg-max; uint8, or uint16 beyond 256 classes."""
    ids = (probs[0] > threshold) if probs.shape[0] == 1 else probs.argmax(0)
    return ids.cpu().numpy().astype(np.uint8 if probs.shape[0] <= 256 else np.uint16)


def colour_mask(ids: np.ndarray) -> np.ndarray:
    """``H×W`` class ids as an ``H×W×3`` uint8 picture in :data:`unetzoo.viz.PALETTE` (class 0 black)."""
    return viz.PALETTE[ids % len(viz.PALETTE)].astype(np.uint8)


def overlay_picture(image: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The ``H×W×C`` image as read with its mask tinted, ``H×W×3`` uint8. 8-bit images keep their
    colours; others are stretched by :func:`unetzoo.viz.display_image`."""
    if image.dtype == np.uint8:
        rgb = image[..., :3] if image.shape[-1] >= 3 else np.repeat(image[..., :1], 3, axis=-1)
        shown = rgb.astype(np.float32) / 255
    else:
        shown = viz.display_image(np.moveaxis(image, -1, 0))
    return np.clip(np.rint(viz.overlay(shown, ids) * 255), 0, 255).astype(np.uint8)


def predict_files(
    source: Source,
    inputs: Sequence[str],
    out: Path,
    *,
    tta: str = "none",
    window: Sequence[int] | None = None,
    overlap: float = 0.5,
    blend: str = "gaussian",
    threshold: float = 0.5,
    palette: bool = False,
    probabilities: bool = False,
    overlay: bool = False,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    progress: Callable[..., None] | None = None,
) -> PredictionReport:
    """Predict a mask for every input and write it under ``out``.

    2D images: ``out/<stem>.png`` class ids (uint8; ``palette``: RGB in the viz palette), with
    ``probabilities`` also ``<stem>.npy`` float16 ``(C, H, W)`` and with ``overlay``
    ``<stem>_overlay.png``. Images of one size go through the model ``batch_size`` at a time.
    NIfTI volumes (3D models): the volume is z-scored, ``out/<stem>.nii.gz`` gets class ids with
    the input's affine and header, ``probabilities`` also ``<stem>_probs.nii.gz`` float32
    ``(*S, C)``. ``progress(0, total=N)`` is called first, then ``progress()`` once per input.
    Inputs that match nothing, or an ``out`` that holds inputs, raise ``ValueError`` before
    anything is written.
    """
    files = collect_inputs(inputs)
    names = output_names(files, Path(out))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = inference_model(source.model).to(device)
    runner = _Runner(model, source, out, device,
                     dict(tta=tta, window=tuple(window) if window else None, overlap=overlap, blend=blend,
                          max_batch=None),
                     threshold, palette, probabilities, overlay, progress)  # fmt: skip
    runner.report.inputs = len(files)
    if progress is not None:
        progress(0, total=len(files))
    pending: dict[tuple[int, ...], list[tuple[Path, np.ndarray, torch.Tensor]]] = {}
    for path in files:
        if is_volume(path):
            runner.volume(path, names[path])
            continue
        try:
            image, x = runner.read(path)
        except DataError as exc:
            runner.fail(path, str(exc))
            continue
        group = pending.setdefault(tuple(x.shape), [])
        group.append((path, image, x))
        if len(group) >= batch_size:
            runner.images(pending.pop(tuple(x.shape)), names)
    for group in pending.values():
        runner.images(group, names)
    return runner.report


class _Runner:
    """The state of one :func:`predict_files` call: model, options, the report being filled."""

    def __init__(self, model, source, out, device, opts, threshold, palette, probabilities, overlay,
                 progress) -> None:  # fmt: skip
        self.model, self.out, self.device, self.opts = model, out, device, opts
        self.size = training_size(source)
        self.spatial = int(getattr(model, "config", {}).get("spatial_dims", 2))
        self.channels = int(getattr(model, "config", {}).get("in_channels", 3))
        self.prep = model_preprocessing(model)
        self.threshold, self.palette = threshold, palette
        self.probabilities, self.overlay = probabilities, overlay
        self.progress = progress
        self.report = PredictionReport()

    def fail(self, path: Path, reason: str) -> None:
        self.report.failures.append((path, reason.splitlines()[0] if reason else "failed"))
        self._tick()

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress()

    def _probs(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return probabilities_of(self.model, x.to(self.device), size=self.size, **self.opts).float().cpu()

    def read(self, path: Path) -> tuple[np.ndarray, torch.Tensor]:
        """The image ``H×W×C`` as read and the model input ``(C, H, W)``."""
        if self.spatial != 2:
            raise DataError(f"{path}: a 2D image, the model is {self.spatial}D")
        image = read_image(path)
        return image, normalise_image(image, self.prep, self.channels, path)

    def images(self, group: list[tuple[Path, np.ndarray, torch.Tensor]], names: dict[Path, str]) -> None:
        """Predict one batch of same-size images and write their outputs."""
        try:
            probs = self._probs(torch.stack([x for _, _, x in group]))
        except RuntimeError as exc:
            for path, _, _ in group:
                self.fail(path, f"prediction failed: {exc}")
            return
        from PIL import Image

        for (path, image, _), p in zip(group, probs, strict=True):
            name = names[path]
            ids = class_ids(p, self.threshold)
            mask = self.out / f"{name}.png"
            Image.fromarray(colour_mask(ids) if self.palette else ids).save(mask)
            self.report.written.append(mask)
            if self.probabilities:
                np.save(self.out / f"{name}.npy", p.numpy().astype(np.float16))
                self.report.written.append(self.out / f"{name}.npy")
            if self.overlay:
                Image.fromarray(overlay_picture(image, ids)).save(self.out / f"{name}_overlay.png")
                self.report.written.append(self.out / f"{name}_overlay.png")
            self._tick()

    def volume(self, path: Path, name: str) -> None:
        """Predict one NIfTI volume (z-scored as in training) and write it with the input's geometry."""
        import nibabel as nib

        try:
            if self.spatial != 3:
                raise DataError(f"{path}: a volume, the model is {self.spatial}D")
            img = nib.load(path)
            x = torch.from_numpy(normalise_volume(np.asarray(img.dataobj, dtype=np.float32), self.channels,
                                                  path))[None]  # fmt: skip
        except Exception as exc:  # nibabel raises many kinds on a bad file
            self.fail(path, str(exc) if isinstance(exc, DataError) else
                      f"{path}: unreadable volume ({type(exc).__name__}: {exc})")  # fmt: skip
            return
        try:
            probs = self._probs(x)[0]
        except RuntimeError as exc:
            self.fail(path, f"prediction failed: {exc}")
            return
        ids = class_ids(probs, self.threshold)
        self._save_nifti(img, ids, self.out / f"{name}.nii.gz")
        if self.probabilities:
            self._save_nifti(img, np.moveaxis(probs.numpy(), 0, -1).astype(np.float32),
                             self.out / f"{name}_probs.nii.gz")  # fmt: skip
        self._tick()

    def _save_nifti(self, img, array: np.ndarray, path: Path) -> None:
        """``array`` with ``img``'s affine and header (pixdims, orientation codes), its own dtype."""
        import nibabel as nib

        header = img.header.copy()
        header.set_data_dtype(array.dtype)
        kind = type(img) if isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)) else nib.Nifti1Image
        result = kind(array, img.affine, header)
        result.header.set_slope_inter(1.0, 0.0)
        result.header["cal_min"], result.header["cal_max"] = 0, 0
        nib.save(result, str(path))
        self.report.written.append(path)
