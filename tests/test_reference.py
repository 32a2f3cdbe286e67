from pathlib import Path

from gantrain.reference import markdown


def test_config_reference_doc_is_current():
    doc = Path(__file__).resolve().parents[1] / "docs" / "CONFIG.md"
    assert doc.read_text() == markdown(), "docs/CONFIG.md is stale: run `python -m gantrain.reference > docs/CONFIG.md`"


def test_reference_names_every_family_and_key():
    text = markdown()
    for needle in ("### `gan`", "### `dcgan`", "### `image_folder`", "`model.g_widths`", "`train.d_steps`", "`optimizer.<network>.beta_1`"):
        assert needle in text


def test_no_citation_of_a_file_outside_the_repository_and_no_machine_paths():
    """Review item 16: code and docs cited MODELS.md (not in the repository); BENCHMARKS.md had /work/... paths."""
    import re

    root = Path(__file__).resolve().parents[1]
    files = [p for d in ("gantrain", "configs", "benchmarks", "docs") for p in (root / d).rglob("*") if p.suffix in (".py", ".yaml", ".md", ".json")]
    files += [root / "README.md", root / "BENCHMARKS.md"]
    cites = [str(p.relative_to(root)) for p in files if "MODELS.md" in p.read_text(encoding="utf-8")]
    assert cites == []
    absolute = [f"{p.name}: {m}" for p in (root / "README.md", root / "BENCHMARKS.md") for m in re.findall(r"(?<![\w.~])/(?:work|home|root|Users)/\S+", p.read_text(encoding="utf-8"))]
    assert absolute == []
