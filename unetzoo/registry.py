"""One ``Registry`` type for models, datasets and losses, with lazy entry-point plugins.

Built-in entries register at import. Entry points of the registry's group (for example
``unetzoo.models``) are loaded on first lookup; a plugin that fails to import is recorded
in ``plugin_errors`` (and warned about by name) and never breaks the rest, and a plugin
name that clashes with an existing entry is an error naming both.
"""

from __future__ import annotations

import difflib
import fnmatch
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any


@dataclass
class Entry:
    """A registered object and where it came from (``unetzoo`` or a plugin distribution)."""

    name: str
    obj: Any
    source: str = "unetzoo"


class UnknownNameError(KeyError):
    """A name that is not registered; the message lists the closest registered names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry:
    """Names → objects for one kind of thing (``model``, ``dataset``, ``loss``)."""

    def __init__(self, kind: str, group: str | None = None, *, listing: str | None = None) -> None:
        self.kind = kind
        self.group = group
        # the call that lists every name, as unknown-name errors suggest it
        self.listing = listing or f"unetzoo.list_{kind}s()"
        self._entries: dict[str, Entry] = {}
        self._plugins_loaded = group is None
        self.plugin_errors: dict[str, str] = {}

    def add(self, name: str, obj: Any, *, source: str = "unetzoo") -> None:
        """Register ``obj`` as ``name``; a name taken already raises a ``ValueError`` naming both."""
        if name in self._entries:
            other = self._entries[name]
            raise ValueError(
                f"{self.kind} {name!r} from {source} clashes with the {self.kind} of the same "
                f"name from {other.source}; rename one of them"
            )
        self._entries[name] = Entry(name, obj, source)

    def entry(self, name: str) -> Entry:
        """The :class:`Entry` for ``name``; unknown names raise :class:`UnknownNameError`."""
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=5, cutoff=0.5)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{hint}. "
                f"See {self.listing} for all {len(self._entries)} names."
            ) from None

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

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in metadata.entry_points(group=self.group):
            source = ep.dist.name if ep.dist is not None else ep.value
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break the rest
                label = f"{ep.name} ({source}: {ep.value})"
                self.plugin_errors[label] = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"unetzoo: {self.kind} plugin {label} failed to load: {exc}", stacklevel=3)
                continue
            self.add(ep.name, obj, source=source)
