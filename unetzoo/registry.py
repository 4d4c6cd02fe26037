"""One ``Registry`` type for models, datasets and losses, with lazy entry-point plugins.

Built-in entries register at import. Entry points of the registry's group (for example
``unetzoo.models``) are loaded on first lookup, all of them, in the order of their
distribution's name, and nothing in that loading raises:

- a plugin that fails to import is recorded as ``failed`` with its error; looking its name up
  says so (``loss 'x' from pkg failed to load: ...``) instead of calling the name unknown;
- a plugin whose name is taken already (by a built-in, or by a plugin of a distribution whose
  name sorts first) is recorded as ``rejected``, naming both packages; the first holder keeps
  the name;
- every other entry loads as usual.

Each problem is warned about once per process as a :class:`PluginWarning`; ``plugins`` keeps
the status of every entry point for ``unetzoo list plugins``.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

BUILTIN = "unetzoo"

_warned: set[str] = set()


class PluginWarning(UserWarning):
    """A plugin that failed to load, clashes with another name, or misbehaved when used."""


def warn_once(message: str) -> None:
    """Warn with ``message`` as a :class:`PluginWarning`, the first time only in this process."""
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, PluginWarning, stacklevel=3)


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, for an error raised by plugin code."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def call_mismatch(obj: Any, *args: Any, **kwargs: Any) -> str:
    """Why ``obj(*args, **kwargs)`` cannot be called with these arguments; ``""`` when it can
    (or when its signature cannot be read)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return ""
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        given = f"{len(args)} positional argument{'s' * (len(args) != 1)}"
        given += "".join(f", {k}={v!r}" for k, v in kwargs.items())
        return f"{getattr(obj, '__qualname__', obj)}{signature} cannot be called with {given}: {exc}"
    return ""


@dataclass
class Entry:
    """A registered object and where it came from (``unetzoo`` or a plugin distribution)."""

    name: str
    obj: Any
    source: str = BUILTIN


@dataclass
class PluginStatus:
    """What became of one plugin entry: ``loaded``, ``rejected`` (its name was taken: ``reason``
    names the holder) or ``failed`` (it did not import, or failed when used: ``reason``)."""

    group: str
    name: str
    package: str
    target: str  # the entry point's "module:attribute"
    status: str = "loaded"
    reason: str = ""

    @property
    def label(self) -> str:
        """``name (package: module:attribute)``."""
        where = f"{self.package}: {self.target}" if self.target not in ("", self.package) else self.package
        return f"{self.name} ({where})"


class UnknownNameError(KeyError):
    """A name that is not registered; the message lists the closest registered names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginLoadError(UnknownNameError):
    """A name whose plugin failed to load; the message names the package and the error."""


def _plural(kind: str) -> str:
    word = kind.replace(" ", "_")
    if word.endswith(("ss", "x", "sh", "ch")):
        return word + "es"
    return word if word.endswith("s") else word + "s"


def _dist_key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class Registry:
    """Names → objects for one kind of thing (``model``, ``dataset``, ``loss``)."""

    def __init__(self, kind: str, group: str | None = None, *, listing: str | None = None) -> None:
        self.kind = kind
        self.group = group
        # the call that lists every name, as unknown-name errors suggest it
        self.listing = listing or f"unetzoo.list_{_plural(kind)}()"
        self._entries: dict[str, Entry] = {}
        self._plugins_loaded = group is None
        self._plugin_packages: set[str] = set()
        self._plugins: list[PluginStatus] = []

    @property
    def plugins(self) -> list[PluginStatus]:
        """The status of every plugin entry point of the group, in loading order."""
        self._load_plugins()
        return list(self._plugins)

    @property
    def plugin_errors(self) -> dict[str, str]:
        """``{label: reason}`` of every plugin entry that failed or was rejected."""
        self._load_plugins()
        return {p.label: f"{p.status}: {p.reason}" for p in self._plugins if p.status != "loaded"}

    def add(self, name: str, obj: Any, *, source: str = BUILTIN) -> None:
        """Register ``obj`` as ``name``.

        A name taken already raises a ``ValueError`` naming both, except where a plugin
        distribution of this registry is involved: an entry added for a plugin never takes a name
        from its holder (it is recorded as rejected), and a built-in takes its name back from a
        plugin (the plugin is recorded as rejected).
        """
        other = self._entries.get(name)
        if other is None:
            self._entries[name] = Entry(name, obj, source)
        elif source in self._plugin_packages:
            self._reject(name, source, "", other.source)
        elif source == BUILTIN and other.source in self._plugin_packages:
            del self._entries[name]
            self._reject(name, other.source, "", BUILTIN)
            self._entries[name] = Entry(name, obj, source)
        else:
            raise ValueError(
                f"{self.kind} {name!r} from {source} clashes with the {self.kind} of the same "
                f"name from {other.source}; rename one of them"
            )

    def entry(self, name: str) -> Entry:
        """The :class:`Entry` for ``name``; unknown names raise :class:`UnknownNameError`, and
        names whose plugin failed to load :class:`PluginLoadError`."""
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            pass
        failed = next((p for p in self._plugins if p.name == name and p.status == "failed"), None)
        if failed is not None:
            raise PluginLoadError(
                f"{self.kind} {name!r} from {failed.package} failed to load: {failed.reason}"
            )
        close = difflib.get_close_matches(name, list(self._entries), n=5, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}{hint}. See {self.listing} for all {len(self._entries)} names."
        )

    def get(self, name: str) -> Any:
        """The object registered as ``name``."""
        return self.entry(name).obj

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching the shell-style ``pattern``, sorted."""
        self._load_plugins()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        self._load_plugins()
        return iter(self._entries[n] for n in sorted(self._entries))

    def status(self, name: str, package: str) -> PluginStatus | None:
        """The status record of the plugin entry ``name`` from distribution ``package``."""
        self._load_plugins()
        return next((p for p in self._plugins if p.name == name and p.package == package), None)

    def fail(self, name: str, reason: str) -> None:
        """Record that the loaded plugin entry ``name`` failed when used (``reason``), and warn once.

        It stays registered: asking for it by name still reaches it.
        """
        entry = self.entry(name)
        record = self.status(name, entry.source)
        if record is None:
            record = PluginStatus(self.group or "", name, entry.source, "")
            self._plugins.append(record)
        record.status, record.reason = "failed", reason
        warn_once(f"unetzoo: {self.kind} plugin {record.label} failed: {reason}")

    def _reject(self, name: str, package: str, target: str, holder: str) -> None:
        reason = f"clashes with the {self.kind} {name!r} from {holder}, which keeps the name"
        record = next((p for p in self._plugins if p.name == name and p.package == package
                       and p.status == "loaded"), None)  # fmt: skip
        if record is None:
            record = PluginStatus(self.group or "", name, package, target)
            self._plugins.append(record)
        record.status, record.reason = "rejected", reason
        warn_once(f"unetzoo: {self.kind} plugin {record.label} is rejected: it {reason}; rename one of them")

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        found = [
            (ep.dist.name if ep.dist else ep.value, ep) for ep in metadata.entry_points(group=self.group)
        ]
        found.sort(key=lambda pair: (_dist_key(pair[0]), pair[1].name, pair[1].value))
        self._plugin_packages.update(package for package, _ in found)
        for package, ep in found:
            record = PluginStatus(self.group or "", ep.name, package, ep.value)
            self._plugins.append(record)
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break the rest
                record.status, record.reason = "failed", one_line(exc)
                warn_once(f"unetzoo: {self.kind} plugin {record.label} failed to load: {record.reason}")
                continue
            if ep.name in self._entries:
                self._reject(ep.name, package, ep.value, self._entries[ep.name].source)
            else:
                self._entries[ep.name] = Entry(ep.name, obj, package)
