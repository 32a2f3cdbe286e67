from pathlib import Path

from gantrain.reference import markdown


def test_config_reference_doc_is_current():
    doc = Path(__file__).resolve().parents[1] / "docs" / "CONFIG.md"
    assert doc.read_text() == markdown(), "docs/CONFIG.md is stale: run `python -m gantrain.reference > docs/CONFIG.md`"


def test_reference_names_every_family_and_key():
    text = markdown()
    for needle in ("### `gan`", "### `dcgan`", "### `image_folder`", "`model.g_widths`", "`train.d_steps`", "`optimizer.<network>.beta_1`"):
        assert needle in text
