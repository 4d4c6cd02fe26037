"""Package a benchmark's best model as an offline weights plugin and measure the shipped file.

    python benchmarks/ship_weights.py drive [--float16]
    python benchmarks/ship_weights.py kvasir --float16

1. ``scripts/make_weights_plugin.py`` packages the run's ``best/`` into
   ``plugins/unetzoo-weights-<name>`` (float16 storage with ``--float16``).
2. The packaged folder is evaluated on the test data with the settings the accuracy
   benchmark chose on validation (its ``chosen_on_validation``): these are the published
   numbers, written to ``benchmarks/results/accuracy_<name>_shipped.json`` and, with the
   protocol and the training command, into the package's model card and tag metrics.
   The float16 file must stay within 0.002 of the float32 test metrics.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from accuracy_common import REPO, SHARED

from unetzoo.evaluation import Source, evaluate
from unetzoo.hub import from_pretrained
from unetzoo.training.config import read_yaml

HERE = Path(__file__).resolve().parent
SETUPS = {
    "drive": {"tag": "unet.drive", "result": "accuracy_drive.json", "run": "runs/bench-drive",
              "data": SHARED / "DRIVE" / "test", "split": "all", "roi": True,
              "main": ("global", ["dice", "auc", "recall", "specificity", "accuracy"]),
              "dataset": "DRIVE (official split, first observer)"},
    "kvasir": {"tag": "unet_efficientnet_lite0.kvasir", "result": "accuracy_kvasir.json",
               "run": "runs/bench-kvasir", "data": SHARED / "Kvasir-SEG", "split": "benchmarks/splits/kvasir.json",
               "roi": False, "main": ("per_image_mean", ["dice", "iou"]),
               "dataset": "Kvasir-SEG (split benchmarks/splits/kvasir.json)"},
}  # fmt: skip


def package(setup: dict, run: Path, name: str, float16: bool, metrics: Path | None, card: Path | None) -> Path:
    argv = [sys.executable, str(REPO / "scripts" / "make_weights_plugin.py"), str(run), "--tag", setup["tag"],
            "--package", f"unetzoo-weights-{name}", "--dataset", setup["dataset"], "--default",
            "--description", f"{setup['tag']}: unetzoo weights trained on {setup['dataset']}"]  # fmt: skip
    options = read_yaml(run / "config.yaml")  # what the run's images went through, for the packaged config
    if options.get("clahe"):
        argv += ["--preprocessing", "clahe=true"]
    if options.get("size"):
        dims = [int(v) for v in str(options["size"]).split("#")[0].strip().lower().split("x")]
        argv += ["--preprocessing", f"input_size={json.dumps(dims * 2 if len(dims) == 1 else dims)}"]
    argv += ["--float16"] if float16 else []
    argv += ["--metrics", str(metrics)] if metrics else []
    argv += ["--card", str(card)] if card else []
    subprocess.run(argv, check=True, cwd=REPO)
    module = f"unetzoo_weights_{name}"
    return REPO / "plugins" / f"unetzoo-weights-{name}" / "src" / module / setup["tag"].split(".", 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=sorted(SETUPS))
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--float16", action="store_true")
    args = parser.parse_args()
    setup = SETUPS[args.name]
    run = args.run or REPO / setup["run"]
    result = json.loads((HERE / "results" / setup["result"]).read_text())
    chosen = result["chosen_on_validation"]
    folder = package(setup, run, args.name, args.float16, None, None)
    source = Source(from_pretrained(folder), run, {})
    settings = {"data": str(Path(setup["data"]).relative_to(REPO.parent).as_posix()), "split": setup["split"],
                "roi": setup["roi"], "tta": chosen["tta"], "threshold": chosen["threshold"]}  # fmt: skip
    settings["data"] = "../" + settings["data"]  # relative to the checkout, as the tests run it
    ev = evaluate(source, REPO / settings["data"], split=setup["split"], roi=setup["roi"], tta=chosen["tta"],
                  threshold=chosen["threshold"])  # fmt: skip
    aggregation, keys = setup["main"]
    scores = {"global": ev.global_scores, "per_image_mean": ev.per_image_scores}
    main_scores = {k: round(scores[aggregation][k], 4) for k in keys}
    fp32 = result["test"]
    shipped = {"tag": setup["tag"], "float16": args.float16, "settings": settings,
               "scores": {agg: {k: scores[agg][k] for k in keys} for agg in (aggregation,)},
               "main": main_scores, "float32_run_test": fp32}  # fmt: skip
    (HERE / "results" / f"accuracy_{args.name}_shipped.json").write_text(json.dumps(shipped, indent=2) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        metrics, card = Path(tmp) / "metrics.json", Path(tmp) / "card.md"
        metrics.write_text(json.dumps({f"test_{k}": v for k, v in main_scores.items()}))
        lines = ["## Benchmark", "", f"- data: {setup['dataset']}",
                 f"- protocol: {result.get('protocol', '')}",
                 f"- chosen on validation: test-time augmentation `{chosen['tta']}`, threshold {chosen['threshold']}",
                 f"- test ({aggregation.replace('_', ' ')}): " + ", ".join(f"{k} {v:.4f}" for k, v in main_scores.items()),
                 f"- made by: `{result['command']}` (training: `unetzoo finetune --config {result['training']['config']}`)",
                 "- evaluate: `unetzoo evaluate " + setup["tag"] + " " + settings["data"]
                 + (f" --split {setup['split']}" if setup["split"] != "all" else " --split all")
                 + (" --roi" if setup["roi"] else "") + f" --tta {chosen['tta']} --threshold {chosen['threshold']}`",
                 ""]  # fmt: skip
        card.write_text("\n".join(lines))
        package(setup, run, args.name, args.float16, metrics, card)
    print(json.dumps(shipped["main"]), "float32 run:", json.dumps(fp32))


if __name__ == "__main__":
    main()
