"""Mixed precision: float16 with dynamic loss scaling, bfloat16; float32 losses; checkpoints and resume."""

import json

import keras
import numpy as np
import pytest

import gantrain
from gantrain.run import build_model
from gantrain.config import validate
from tests.conftest import tiny_config


@pytest.mark.parametrize("precision, compute", [("mixed_float16", "float16"), ("mixed_bfloat16", "bfloat16")])
def test_mixed_precision_trains_and_resumes(tmp_path, mnist_dir, precision, compute):
    cfg = tiny_config(mnist_dir, precision=precision)
    model = build_model(validate(cfg), (28, 28, 1), 10)
    convs = [l for l in model.discriminator.layers if isinstance(l, keras.layers.Conv2D)]
    assert convs[0].compute_dtype == compute and convs[0].variable_dtype == "float32"
    assert keras.mixed_precision.dtype_policy().name == "float32"  # the process default is untouched
    run = gantrain.fit(cfg, overrides=["train.steps=3"], run_dir=tmp_path / precision, progress=False)
    gantrain.fit(None, overrides=["train.steps=6"], resume=run, progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 6 and all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
    images = gantrain.sample(run, n=3)
    assert images.shape == (3, 28, 28, 1) and np.isfinite(images).all()


def test_float16_uses_loss_scaling(mnist_dir):
    from gantrain.models.base import GAN_GROUPS
    from gantrain.run import build_optimizers

    g, d = build_optimizers(validate(tiny_config(mnist_dir, precision="mixed_float16")), GAN_GROUPS).values()
    assert isinstance(g, keras.optimizers.LossScaleOptimizer) and isinstance(d, keras.optimizers.LossScaleOptimizer)
    g, d = build_optimizers(validate(tiny_config(mnist_dir)), GAN_GROUPS).values()
    assert not isinstance(g, keras.optimizers.LossScaleOptimizer)
