"""Shared by the benchmark scripts: print a result and optionally append it to a markdown file."""

from __future__ import annotations


def emit(text: str, path=None) -> None:
    print(text)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write("\n" + text)
