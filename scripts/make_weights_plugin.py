"""Package a trained model as a pip-installable weights plugin that works with no network.

    python scripts/make_weights_plugin.py RUN_OR_FOLDER --tag unet.drive --package unetzoo-weights-drive \
        --card benchmarks/results/accuracy_drive.md [--float16] [--default]

writes ``plugins/<package>/`` holding the model folder (``model.safetensors``, ``config.json``,
``README.md``) as package data, and a module whose ``WEIGHTS`` list the ``unetzoo.weights``
entry point registers: the tag, the folder inside the installed package, and the sha256 of
the weights file and of config.json. After ``pip install plugins/<package>``, ``create_model(ARCH,
pretrained=TAG)``, ``unetzoo predict TAG ...`` and ``torch.hub.load(checkout, ARCH,
pretrained=TAG, source="local")`` load it from the installed files.

``--float16`` stores the floating-point tensors as float16 (half the size; they are read
back into the float32 model); check the metrics of the stored file before publishing it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from unetzoo.hub import sha256_of

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES = 25 * 1024 * 1024

PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{package}"
version = "{version}"
description = "{description}"
requires-python = ">=3.10"
dependencies = ["unetzoo"]

[project.entry-points."unetzoo.weights"]
{name} = "{module}:WEIGHTS"

[tool.setuptools.package-data]
{module} = ["{folder}/*"]
"""

MODULE = '''"""{description}

The weights ship inside this package; the ``unetzoo.weights`` entry point registers them as
``{tag}``, with the sha256 of the weights and of config.json that unetzoo checks before
loading them.
"""

from pathlib import Path

from unetzoo import PretrainedWeights

FOLDER = Path(__file__).resolve().parent / "{folder}"

WEIGHTS = [
    PretrainedWeights(
        tag="{tag}",
        repo_id=str(FOLDER),
        revision="",
        sha256="{sha256}",
        config_sha256="{config_sha256}",
        default={default},
        dataset="{dataset}",
        description="{description}",
        metrics={metrics},
    )
]
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="a run folder (its best/) or a save_pretrained folder")
    parser.add_argument("--tag", required=True, help="ARCH.NAME, e.g. unet.drive")
    parser.add_argument("--package", required=True, help="the distribution name, e.g. unetzoo-weights-drive")
    parser.add_argument("--card", type=Path, help="Markdown appended to the model card (protocol, metrics, command)")
    parser.add_argument("--metrics", type=Path, help="a JSON object of the published test metrics")
    parser.add_argument("--dataset", default="")
    parser.add_argument("--description", default="")
    parser.add_argument("--float16", action="store_true", help="store floating-point tensors as float16")
    parser.add_argument("--default", action="store_true", help="the architecture's default weights")
    parser.add_argument("--preprocessing", action="append", default=[], metavar="KEY=JSON",
                        help="set a preprocessing entry of the packaged config.json (e.g. clahe=true)")
    parser.add_argument("--version", default="1.0.0")
    parser.add_argument("--plugins-dir", type=Path, default=REPO / "plugins", help="where the package folder goes")
    args = parser.parse_args()

    folder = args.source / "best" if (args.source / "best" / "config.json").is_file() else args.source
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        sys.exit(f"{args.source}: no save_pretrained folder (config.json, model.safetensors) there")
    arch, _, name = args.tag.partition(".")
    config = json.loads((folder / "config.json").read_text())
    if config.get("architecture") != arch or not name:
        sys.exit(f"--tag {args.tag}: write ARCH.NAME with ARCH the saved architecture {config.get('architecture')!r}")
    module = args.package.replace("-", "_")
    root = args.plugins_dir / args.package
    data = root / "src" / module / name
    if root.exists():
        shutil.rmtree(root)
    data.mkdir(parents=True)

    state = load_file(folder / "model.safetensors")
    if args.float16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file({k: v.contiguous() for k, v in state.items()}, data / "model.safetensors", metadata={"format": "pt"})
    size = (data / "model.safetensors").stat().st_size
    if size > MAX_BYTES:
        sys.exit(f"{data / 'model.safetensors'}: {size / 2**20:.1f} MiB, over 25 MiB; try --float16")
    for item in args.preprocessing:
        key, _, value = item.partition("=")
        config.setdefault("preprocessing", {})[key] = json.loads(value)
    (data / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    card = (folder / "README.md").read_text() if (folder / "README.md").is_file() else f"# {args.tag}\n"
    if args.card:
        card += "\n" + args.card.read_text()
    if args.float16:
        card += "\nStored as float16 (read back into float32); the metrics above are of this file.\n"
    (data / "README.md").write_text(card)
    metrics = json.loads(args.metrics.read_text()) if args.metrics else {}
    description = args.description or f"{args.tag} weights for unetzoo"
    sha = sha256_of(data / "model.safetensors")
    (root / "src" / module / "__init__.py").write_text(MODULE.format(
        description=description, tag=args.tag, folder=name, sha256=sha, default=args.default,
        config_sha256=sha256_of(data / "config.json"),
        dataset=args.dataset, metrics=repr(metrics)))  # fmt: skip
    (root / "pyproject.toml").write_text(PYPROJECT.format(
        package=args.package, version=args.version, description=description, name=name, module=module,
        folder=name))  # fmt: skip
    (root / "README.md").write_text(
        f"# {args.package}\n\n{description}\n\n```bash\npip install plugins/{args.package}\n```\n\n"
        f"Then `unetzoo.create_model(\"{arch}\", pretrained=\"{args.tag}\")`, `unetzoo predict {args.tag} "
        f"IMAGES --out DIR` or `torch.hub.load(CHECKOUT, \"{arch}\", pretrained=\"{args.tag}\", source=\"local\")`"
        f" load the weights from the installed package, with no network. The model card: "
        f"`src/{module}/{name}/README.md`.\n"
    )
    print(f"{root}: {args.tag}, {size / 2**20:.1f} MiB, sha256 {sha}")


if __name__ == "__main__":
    main()
