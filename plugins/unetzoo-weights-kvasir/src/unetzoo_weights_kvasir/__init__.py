"""unet_efficientnet_lite0.kvasir: unetzoo weights trained on Kvasir-SEG (split benchmarks/splits/kvasir.json)

The weights ship inside this package; the ``unetzoo.weights`` entry point registers them as
``unet_efficientnet_lite0.kvasir``, with the sha256 of the weights and of config.json that unetzoo checks before
loading them.
"""

from pathlib import Path

from unetzoo import PretrainedWeights

FOLDER = Path(__file__).resolve().parent / "kvasir"

WEIGHTS = [
    PretrainedWeights(
        tag="unet_efficientnet_lite0.kvasir",
        repo_id=str(FOLDER),
        revision="",
        sha256="e65ef0a4e3535290c81d60cc53e955eca4b7c9e5cbede84d9703e29e9cb8ab5a",
        config_sha256="4d05ced7db7f56c4f2b4bccfc5cace2437f901a732ea83e07553f37ba16ed297",
        default=True,
        dataset="Kvasir-SEG (split benchmarks/splits/kvasir.json)",
        description="unet_efficientnet_lite0.kvasir: unetzoo weights trained on Kvasir-SEG (split benchmarks/splits/kvasir.json)",
        metrics={'test_dice': 0.8773, 'test_iou': 0.8074},
    )
]
