"""One small registry mechanism for every pluggable component.

Model families, datasets, losses, penalties, optimizers, metrics and extractors each get one :class:`Registry` instance. Entries
are registered with a decorator next to their implementation, carry a one-line description (used
by ``gantrain list``) and optionally the schema of their own config parameters. An unknown name
raises a :class:`UserError` listing the valid ones.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

from gantrain.errors import UserError


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    description: str
    schema: dict = field(default_factory=dict)


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, description: str = "", schema: dict | None = None) -> Callable:
        """Decorator: ``@MODELS.register("dcgan", schema={...})``."""

        def decorate(obj):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            doc = description or (obj.__doc__ or "").strip().splitlines()[0:1]
            if isinstance(doc, list):
                doc = doc[0] if doc else ""
            self._entries[name] = Entry(name, obj, doc, dict(schema or {}))
            return obj

        return decorate

    def unregister(self, name: str) -> None:
        """Remove an entry (a component registered for one test or one notebook session)."""
        del self._entries[name]

    def entry(self, name: str, where: str = "") -> Entry:
        if name not in self._entries:
            valid = ", ".join(sorted(self._entries))
            close = difflib.get_close_matches(str(name), self._entries, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            at = f"{where}: " if where else ""
            raise UserError(f"{at}unknown {self.kind} {name!r}{hint}; valid: {valid}")
        return self._entries[name]

    def get(self, name: str, where: str = "") -> Any:
        return self.entry(name, where).obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries


MODELS = Registry("model family")
DATASETS = Registry("dataset")
LOSSES = Registry("loss")
OPTIMIZERS = Registry("optimizer")
METRICS = Registry("metric")
PENALTIES = Registry("penalty")
EXTRACTORS = Registry("feature extractor")
