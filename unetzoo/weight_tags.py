"""Named, published weights: tags such as ``attn_r2unet_resnet34.kvasir``.

Each tag maps to a Hugging Face Hub repo id, a pinned revision and the sha256 of its
``model.safetensors``. Tables come from three places, read on first use:

- the table shipped with unetzoo (``unetzoo/pretrained.json``);
- JSON files named in the ``UNETZOO_WEIGHTS_TABLE`` environment variable (separated by
  ``os.pathsep``), for weights of your own or of your organisation;
- plugins, through the ``unetzoo.weights`` entry-point group (a ``PretrainedWeights`` or a
  list of them).

``create_model(name, pretrained=True)`` takes the model's default tag, ``pretrained="kvasir"``
a named one; a local directory, a local file or a Hub repo id works as well.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from .checkpoint import is_repo_id
from .registry import Registry, warn_once

TABLE_ENV = "UNETZOO_WEIGHTS_TABLE"


@dataclass(frozen=True)
class PretrainedWeights:
    """One published set of weights."""

    tag: str  # "<model>.<name>", e.g. "attn_r2unet_resnet34.kvasir"
    repo_id: str
    revision: str
    sha256: str
    default: bool = False
    config_sha256: str = ""  # of config.json: pins the architecture and arguments too
    dataset: str = ""
    description: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.tag.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.tag.split(".", 1)[1]


class _WeightsTable(Registry):
    """Built-in and plugin tags, loaded once; ``UNETZOO_WEIGHTS_TABLE`` tables, re-read when it changes."""

    _env_tables: str | None = None

    def _load_plugins(self) -> None:
        if not self._plugins_loaded:
            super()._load_plugins()  # entry points; each gives one tag or a list of them
            for entry in list(self._entries.values()):
                if not isinstance(entry.obj, PretrainedWeights):
                    del self._entries[entry.name]
                    items = entry.obj if isinstance(entry.obj, list | tuple) else [entry.obj]
                    wrong = next((i for i in items if not isinstance(i, PretrainedWeights)), None)
                    if wrong is not None:  # the plugin is recorded as failed; every other tag stays
                        self._plugin_failed(entry, f"gives {type(wrong).__name__}, not a PretrainedWeights "
                                                   "or a list of them")  # fmt: skip
                        continue
                    for item in items:
                        self.add(item.tag, item, source=entry.source)
            with resources.files("unetzoo").joinpath("pretrained.json").open() as f:
                for item in json.load(f):
                    self.add(item["tag"], PretrainedWeights(**item))
        env = os.environ.get(TABLE_ENV, "")
        if env != self._env_tables:
            tables = {table: read_table(table) for table in filter(None, env.split(os.pathsep))}  # all or none
            old = set(filter(None, (self._env_tables or "").split(os.pathsep)))
            self._entries = {k: e for k, e in self._entries.items() if e.source not in old}
            for table, items in tables.items():
                for item in items:
                    try:
                        self.add(item.tag, item, source=table)
                    except ValueError as exc:  # a tag that another table or a plugin has already
                        self._entries = {k: e for k, e in self._entries.items() if e.source not in tables}
                        raise WeightsTableError(f"{table} (weights table named in {TABLE_ENV}): {exc}") from None
            self._env_tables = env


    def _plugin_failed(self, entry, reason: str) -> None:
        record = next((r for r in self._plugins if r.name == entry.name and r.package == entry.source), None)
        if record is not None:
            record.status, record.reason = "failed", reason
        warn_once(f"unetzoo: {self.kind} plugin {entry.name} ({entry.source}) failed: {reason}")


WEIGHTS = _WeightsTable("weights", group="unetzoo.weights", listing="unetzoo.list_pretrained()")


class WeightsTableError(ValueError):
    """A weights table that cannot be used; the message names the file and what is wrong in it."""


_FIELD_TYPES = {"tag": str, "repo_id": str, "revision": str, "sha256": str, "default": bool, "config_sha256": str,
                "dataset": str, "description": str, "metrics": dict}  # fmt: skip


def read_table(path: str | os.PathLike) -> list[PretrainedWeights]:
    """The tags of a JSON weights table: a list of objects with the fields of ``PretrainedWeights``
    (``tag`` as ``"<model>.<name>"``, ``repo_id``, ``revision`` and ``sha256`` required).

    A missing or unreadable file, text that is not UTF-8 or not JSON, and a wrong structure
    are a :class:`WeightsTableError` naming the file (and the entry and field).
    """
    where = f"{os.fspath(path)} (weights table named in {TABLE_ENV})"
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise WeightsTableError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    try:
        items = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise WeightsTableError(f"{where}: not UTF-8 text (byte {exc.start}); save it as UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise WeightsTableError(f"{where}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") \
            from None  # fmt: skip
    if not isinstance(items, list):
        raise WeightsTableError(f"{where}: holds a JSON {type(items).__name__}; write a list of objects with the "
                                "fields tag, repo_id, revision, sha256 (see unetzoo.weight_tags.write_table)")  # fmt: skip
    return [_table_entry(item, i, where) for i, item in enumerate(items)]


def _table_entry(item: Any, index: int, where: str) -> PretrainedWeights:
    """Entry ``index`` of a weights table as a :class:`PretrainedWeights`, its fields checked."""
    entry = f"{where}: entry {index + 1}"
    if not isinstance(item, dict):
        raise WeightsTableError(f"{entry} is a JSON {type(item).__name__}, not an object")
    known = {f.name for f in fields(PretrainedWeights)}
    unknown = sorted(set(item) - known)
    if unknown:
        raise WeightsTableError(f"{entry}: unknown field {unknown[0]!r}; the fields are {', '.join(sorted(known))}")
    required = [f.name for f in fields(PretrainedWeights) if f.default is MISSING and f.default_factory is MISSING]
    missing = [k for k in required if k not in item]
    if missing:
        raise WeightsTableError(f"{entry}: field {missing[0]!r} is missing; {', '.join(required)} are required")
    for key, kind in _FIELD_TYPES.items():
        if key in item and not isinstance(item[key], kind):
            raise WeightsTableError(f"{entry}: field {key!r} is {item[key]!r}, not a {kind.__name__}")
    if "." not in item["tag"].strip(".") or item["tag"].startswith("."):
        raise WeightsTableError(f"{entry}: tag {item['tag']!r}; write it as '<model>.<name>'")
    return PretrainedWeights(**item)


def write_table(path: str | os.PathLike, items: list[PretrainedWeights]) -> None:
    """Write a JSON weights table that ``UNETZOO_WEIGHTS_TABLE`` can name."""
    Path(path).write_text(json.dumps([asdict(i) for i in items], indent=2) + "\n")


def list_pretrained(pattern: str = "*") -> list[str]:
    """Published weight tags matching ``pattern`` (e.g. ``"attn_r2unet_resnet34.*"``), sorted."""
    return WEIGHTS.names(pattern)


def get_weights(tag: str) -> PretrainedWeights:
    """The :class:`PretrainedWeights` of a tag."""
    return WEIGHTS.get(tag)


def resolve_pretrained(model: str, pretrained: Any) -> tuple[str, str | None, str | None, str | None]:
    """``(source, revision, sha256, config_sha256)`` for ``create_model(model, pretrained=...)``.

    ``True`` is the model's default tag; a string is a tag name (``"kvasir"``), a full tag
    (``"attn_r2unet_resnet34.kvasir"``), a local directory or file, or a Hub repo id.
    """
    tags = list_pretrained(f"{model}.*")
    if pretrained is True:
        defaults = [t for t in tags if get_weights(t).default] or tags[:1]
        if not defaults:
            raise FileNotFoundError(
                f"no published weights for {model!r}; pass pretrained='<local dir, file or "
                f"Hub repo id>', or add a tag through {TABLE_ENV}. "
                f"Tags: {', '.join(list_pretrained()) or 'none yet'}"
            )
        tag = defaults[0]
    elif isinstance(pretrained, str | os.PathLike):
        text = os.fspath(pretrained)
        tag = next((t for t in (text, f"{model}.{text}") if t in tags), None)
        if tag is None:
            if text in WEIGHTS:
                raise ValueError(f"weights {text!r} are for {get_weights(text).model!r}, not {model!r}")
            if Path(text).exists() or is_repo_id(text):
                return text, None, None, None
            raise FileNotFoundError(
                f"pretrained={text!r} is not a tag of {model!r} ({', '.join(tags) or 'none'}), "
                "nor an existing local path or a Hub repo id 'org/name'"
            )
    else:
        raise TypeError(f"pretrained must be True, a tag, a path or a repo id; got {pretrained!r}")
    w = get_weights(tag)
    return w.repo_id, w.revision, w.sha256, w.config_sha256 or None
