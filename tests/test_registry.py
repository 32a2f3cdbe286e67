"""The Registry mechanism, on a fresh instance (never the global MODELS/DATASETS/... ones)."""

from __future__ import annotations

import pytest

from gantrain.errors import UserError
from gantrain.registry import Registry


@pytest.fixture
def reg() -> Registry:
    r = Registry("thing")

    @r.register("alpha", description="the first thing", schema={"x": 1})
    class Alpha:
        pass

    @r.register("beta")
    def beta():
        """Beta builder.

        More text that must not end up in the description.
        """

    r.register("gamma_ray")(object())
    return r


def test_register_returns_object_and_get_finds_it(reg):
    obj = object()
    returned = reg.register("delta", description="d")(obj)
    assert returned is obj
    assert reg.get("delta") is obj
    assert reg.entry("delta").name == "delta"


def test_names_sorted_and_contains(reg):
    assert reg.names() == ["alpha", "beta", "gamma_ray"]
    assert [e.name for e in reg.entries()] == ["alpha", "beta", "gamma_ray"]
    assert "alpha" in reg
    assert "omega" not in reg


def test_description_explicit_or_first_docstring_line(reg):
    assert reg.entry("alpha").description == "the first thing"
    assert reg.entry("beta").description == "Beta builder."


def test_schema_is_stored_as_a_copy(reg):
    schema = {"k": 1}
    reg.register("withschema", schema=schema)(object())
    schema["k"] = 2
    assert reg.entry("withschema").schema == {"k": 1}
    assert reg.entry("beta").schema == {}


def test_duplicate_registration_raises_value_error(reg):
    with pytest.raises(ValueError, match="thing 'alpha' registered twice"):
        reg.register("alpha")(object())
    # the first registration is untouched
    assert reg.entry("alpha").description == "the first thing"


def test_unknown_name_lists_valid_names_and_suggests_closest(reg):
    with pytest.raises(UserError) as info:
        reg.get("alpah")
    msg = str(info.value)
    assert "unknown thing 'alpah'" in msg
    assert "did you mean 'alpha'" in msg
    assert "valid: alpha, beta, gamma_ray" in msg


def test_unknown_name_without_close_match_has_no_hint(reg):
    with pytest.raises(UserError) as info:
        reg.entry("zzzzzzzz")
    msg = str(info.value)
    assert "did you mean" not in msg
    assert "valid: alpha, beta, gamma_ray" in msg


def test_unknown_name_error_is_prefixed_with_where(reg):
    with pytest.raises(UserError) as info:
        reg.get("bet", where="model.family")
    msg = str(info.value)
    assert msg.startswith("model.family: unknown thing 'bet'")
    assert "did you mean 'beta'" in msg


def test_user_error_exit_code_is_2(reg):
    with pytest.raises(UserError) as info:
        reg.get("nope")
    assert info.value.exit_code == 2


def test_empty_registry():
    r = Registry("widget")
    assert r.names() == []
    assert r.entries() == []
    with pytest.raises(UserError, match="unknown widget 'x'"):
        r.get("x")


def test_metrics_are_a_registry_and_the_config_offers_the_ones_with_a_direction():
    """Adding a feature metric is one function and its registration (issue 13); evaluate looks them up."""
    import numpy as np

    from gantrain.config import SCHEMA
    from gantrain.evaluate import metric_names, score
    from gantrain.metrics import frechet_distance, feature_statistics
    from gantrain.registry import METRICS

    assert {"fid", "kid", "is", "pr"} <= set(METRICS.names()) and metric_names()[-1] == "accuracy"
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(200, 4)), rng.normal(size=(200, 4)) + 1
    assert score(["fid"], real, fake, None)["fid"] == frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    directed = [m for m in METRICS.names() if METRICS.get(m).lower_is_better is not None]
    assert set(SCHEMA["eval"]["metrics"].choices) == {*directed, "accuracy"}


def test_penalties_are_a_registry():
    from gantrain.config import SCHEMA
    from gantrain.registry import PENALTIES

    assert set(PENALTIES.names()) == {"gradient_penalty", "r1"}
    assert SCHEMA["loss"].common["penalty"].choices == ("none", *PENALTIES.names())
    assert all(PENALTIES.get(name).per_sample for name in PENALTIES.names())


def test_family_capabilities_are_declared():
    """The CLI, eval and fit read declared capabilities (can_classify, has_codes), never hasattr."""
    from gantrain.config import validate
    from gantrain.registry import MODELS
    from gantrain.rundir import build_model
    from tests.conftest import MNIST_PARAMS

    for family in MODELS.names():
        noise = "image" in MODELS.get(family).roles
        data = {"loader": "mnist"} if noise else {"loader": "image_folder", "root": "unused", "image_size": 32}
        cfg = validate({"model": {"family": family, **MNIST_PARAMS.get(family, {})}, "data": data})
        model = build_model(cfg, (28, 28, 1) if noise else (32, 32, 3), 10)
        assert model.can_classify == callable(getattr(model, "classify", None)), family
        assert model.has_codes == callable(getattr(model, "traversal", None)), family
        assert model.generates == callable(getattr(model, "generate", None)), family
        assert model.can_translate == bool(getattr(model, "translators", {})), family
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "gantrain"
    probes = [f"{p.name}:{n.lineno}" for p in package.rglob("*.py") if p.parent.name != "models"
              for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "hasattr"]
    assert probes == []
