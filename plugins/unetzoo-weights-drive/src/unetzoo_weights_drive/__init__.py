"""unet.drive: unetzoo weights trained on DRIVE (official split, first observer)

The weights ship inside this package; the ``unetzoo.weights`` entry point registers them as
``unet.drive``, with the sha256 of the weights and of config.json that unetzoo checks before
loading them.
"""

from pathlib import Path

from unetzoo import PretrainedWeights

FOLDER = Path(__file__).resolve().parent / "drive"

WEIGHTS = [
    PretrainedWeights(
        tag="unet.drive",
        repo_id=str(FOLDER),
        revision="",
        sha256="16afc904b28ae487bff2e2aefee33ed84780c3c3c541d8299179352e42044794",
        config_sha256="1eb47ae914eed1d6f909a1cefb599cef2fa63832e9bb74aacbed991b5da31180",
        default=True,
        dataset="DRIVE (official split, first observer)",
        description="unet.drive: unetzoo weights trained on DRIVE (official split, first observer)",
        metrics={'test_dice': 0.8252, 'test_auc': 0.9805, 'test_recall': 0.8046, 'test_specificity': 0.9788, 'test_accuracy': 0.9566},
    )
]
