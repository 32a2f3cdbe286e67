"""The config reference, generated from the schemas so it cannot drift from the code.

``python -m gantrain.reference > docs/CONFIG.md`` rewrites the doc; a test checks it is current.
"""

from __future__ import annotations

from gantrain.config import SCHEMA, _ensure_registered
from gantrain.registry import DATASETS, LOSSES, MODELS, OPTIMIZERS
from gantrain.schema import schema_docs

SECTIONS = (
    ("Model families", "model.family", MODELS, "model"),
    ("Datasets", "data.loader", DATASETS, "data"),
    ("Losses", "loss.name", LOSSES, "loss"),
    ("Optimizers", "optimizer.generator.name / optimizer.discriminator.name", OPTIMIZERS, "optimizer.<network>"),
)


def _fmt(value) -> str:
    return "`null`" if value is None else f"`{value}`"


def _table(rows) -> list[str]:
    out = ["| key | default | meaning |", "|---|---|---|"]
    out += [f"| `{key}` | {_fmt(default)} | {doc} |" for key, default, doc in rows]
    return out


def markdown() -> str:
    _ensure_registered()
    lines = [
        "# Config reference",
        "",
        "Generated from the code by `python -m gantrain.reference`; `gantrain list --keys` prints the same.",
        "A config lists only what differs from these defaults. `gantrain validate CONFIG` prints the",
        "resolved config. Relative paths are taken from the config file's folder.",
        "",
        "## General keys",
        "",
        *_table(schema_docs(SCHEMA)),
    ]
    for title, selector, registry, prefix in SECTIONS:
        lines += ["", f"## {title} (`{selector}`)", ""]
        for entry in registry.entries():
            lines += [f"### `{entry.name}`", "", entry.description, ""]
            if entry.schema:
                lines += _table(schema_docs(entry.schema, f"{prefix}.")) + [""]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
