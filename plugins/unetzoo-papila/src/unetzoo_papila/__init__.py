"""The PAPILA layout: fundus images with expert optic disc and cup contours."""

from __future__ import annotations

from pathlib import Path

from unetzoo.data import Contours

__all__ = ["Papila"]


class Papila(Contours):
    """PAPILA fundus images with the optic disc (class 1) and cup (class 2) of one expert.

    ``expert`` picks the annotator (1 or 2); contour files are
    ``ExpertsSegmentations/Contours/<image>_{disc,cup}_exp<expert>.txt``.
    """

    format = "papila"

    def __init__(self, root: str | Path, expert: int = 1, *, strict: bool = True) -> None:
        if expert not in (1, 2):
            raise ValueError(f"PAPILA has experts 1 and 2, got expert={expert}")
        super().__init__(
            root,
            classes=("disc", "cup"),
            images="FundusImages",
            contours="ExpertsSegmentations/Contours",
            pattern="{stem}_{cls}_exp" + str(expert) + ".txt",
            strict=strict,
        )

    @classmethod
    def detect(cls, root: Path) -> bool:
        """True for a folder with ``FundusImages/`` and ``ExpertsSegmentations/Contours/``."""
        root = Path(root)
        return (root / "FundusImages").is_dir() and (root / "ExpertsSegmentations" / "Contours").is_dir()
