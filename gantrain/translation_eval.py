"""``gantrain eval`` for image-to-image runs: honest measures of translation quality.

pix2pix, on the held-out pairs: L1, PSNR and SSIM of G(input) against the target, each next to the
same number for the trivial baseline, the input itself as the answer (a grey copy for colourisation,
the edge map for edges, the bicubic upscale for downscaled inputs). Pairs whose input already is the
target (greyscale photographs in a colourisation set) are left out and counted.

CycleGAN, on the held-out images of each domain: the cycle-reconstruction L1 per direction next to
the L1 between the two domains (random pairs: what "unrelated images" score); with a feature
extractor (``--extractor classifier --weights STEM`` of a classifier trained on the two domains),
the Frechet distance between translated A and real B (and the reverse), and the share of translated
images the classifier assigns to the target domain.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from gantrain import checkpoint as ckpt_lib
from gantrain.config import load_config
from gantrain.data import has_splits, load_dataset
from gantrain.errors import UserError
from gantrain.evaluate import score
from gantrain.extractors.base import get_extractor
from gantrain.metrics.similarity import l1, psnr, ssim
from gantrain.models.image_to_image import match_channels
from gantrain.rundir import CONFIG, build_model, read_meta
from gantrain.translate import Translator

BATCH = 64


def translates(run) -> bool:
    """Whether ``run`` (a run directory or checkpoint) holds an image-to-image family."""
    model = _model_of(run)
    return model is not None and model.can_translate


def upscales(run) -> bool:
    """Whether ``run`` holds a super-resolution family (scored by gantrain/upscale.py)."""
    model = _model_of(run)
    return model is not None and model.can_upscale


def _model_of(run):
    prefix = ckpt_lib.find_checkpoint(Path(run))
    run_dir = ckpt_lib.run_dir_of(prefix)
    if not (run_dir / CONFIG).is_file():
        return None
    cfg = load_config(run_dir / CONFIG)
    return build_model(cfg, tuple(read_meta(run_dir, cfg)["image_shape"]), 0)


def evaluate_translation(run, which="latest", n: int | None = None, extractor_name=None, weights=None, seed: int = 0) -> dict:
    """The report (as ``evaluate.evaluate_run``'s): results with their protocol."""
    t0 = time.perf_counter()
    forward = Translator(run, "a2b", which)
    cfg = forward.cfg
    held_out = has_splits(cfg["data"])
    source = load_dataset(cfg["data"], split="test" if held_out else None)
    split = f"held-out test split of {source.description}" if held_out else f"all of {source.description} (no held-out split: training images)"
    base = {"run": str(run), "run_dir": str(forward.run_dir), "checkpoint": str(which), "checkpoint_step": forward.step,
            "generator_weights": forward.weights_source, "seed": seed}
    if source.roles == ("source", "target"):
        results = _paired(forward, source, n, split)
    else:
        results = _unpaired(forward, Translator(run, "b2a", which), source, n, split, extractor_name, weights, seed)
    return {**base, "results": results, "seconds": round(time.perf_counter() - t0, 1)}


def _take(n: int | None, count: int) -> np.ndarray:
    return np.arange(count if n is None else min(n, count))


def _translate(translator: Translator, images: np.ndarray) -> np.ndarray:
    return np.concatenate([translator.model.translate(images[i:i + BATCH], translator.direction).numpy() for i in range(0, len(images), BATCH)])


def _paired(translator: Translator, source, n, split) -> list[dict]:
    pairs = source.examples(_take(n, len(source)))
    x, y = pairs["source"], pairs["target"]
    protocol = {"images": len(y), "real_split": split, "scale": "images in [0, 1]; SSIM: 11x11 Gaussian window, sigma 1.5",
                "baseline": "the input itself as the output (channels repeated)"}
    return paired_scores(_translate(translator, x), np.asarray(match_channels(x, y.shape[-1])), y, protocol)


# Half an 8-bit level on the [-1, 1] scale: inputs closer than this to their target everywhere are the
# same image once saved.
SAME_IMAGE = 1.0 / 255.0


def paired_scores(output, baseline, target, protocol: dict) -> list[dict]:
    """L1, PSNR and SSIM of ``output`` and of ``baseline`` against ``target``, averaged per image.

    Pairs whose baseline (the input) already is the target to 8-bit precision are left out and
    counted: a greyscale photograph in a colourisation set has nothing to translate, and the copy's
    PSNR there is infinite, so a few of them decide the mean (as colourisation benchmarks drop
    greyscale images from their test sets).
    """
    same = np.abs(np.asarray(baseline, np.float64) - np.asarray(target, np.float64)).max(axis=(1, 2, 3)) < SAME_IMAGE
    keep = ~same
    if not keep.any():
        raise UserError(f"all {len(target)} held-out inputs already are their targets (to 8-bit precision): there is nothing to translate; "
                        "check data.pairs and the folders")
    output, baseline, target = np.asarray(output)[keep], np.asarray(baseline)[keep], np.asarray(target)[keep]
    protocol = {**protocol, "images": int(keep.sum()), "left_out_as_already_the_target": int(same.sum())}
    rows = []
    for name, fn, better in (("l1", l1, "lower"), ("psnr", psnr, "higher"), ("ssim", ssim, "higher")):
        rows.append({"metric": name, "value": float(fn(output, target).mean()), "baseline_value": round(float(fn(baseline, target).mean()), 5),
                     "better": better, **protocol})
    return rows


def _unpaired(forward: Translator, backward: Translator, source, n, split, extractor_name, weights, seed) -> list[dict]:
    a = _domain(source, "a", n)
    b = _domain(source, "b", n)
    fake_b, fake_a = _translate(forward, a), _translate(backward, b)
    rec_a, rec_b = _translate(backward, fake_b), _translate(forward, fake_a)
    k = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    between = float(l1(a[rng.permutation(len(a))[:k]], b[rng.permutation(len(b))[:k]]).mean())
    protocol = {"images_a": len(a), "images_b": len(b), "real_split": split, "scale": "images in [0, 1]"}
    rows = [
        {"metric": "cycle_l1_a", "value": float(l1(rec_a, a).mean()), "what": "|G_BA(G_AB(a)) - a|", "between_domains_l1": round(between, 5), **protocol},
        {"metric": "cycle_l1_b", "value": float(l1(rec_b, b).mean()), "what": "|G_AB(G_BA(b)) - b|", "between_domains_l1": round(between, 5), **protocol},
    ]
    if extractor_name is None and weights is None:
        return rows
    if min(len(a), len(b)) < 2:
        raise UserError(f"FID needs at least 2 held-out images per domain, this run's data holds out {len(a)} and {len(b)}; "
                        "hold out more (data.holdout) or drop --extractor/--weights for the cycle L1 alone")
    extractor = get_extractor(extractor_name or "classifier", weights)
    extractor.check_shape(a.shape[1:])
    feats = {}
    for key, images in (("a", a), ("b", b), ("fake_a", fake_a), ("fake_b", fake_b)):
        feats[key] = extractor(images)
    names = extractor.class_names or []
    domains = {"a": _class_of(forward.cfg["data"], "domain_a", names, 0), "b": _class_of(forward.cfg["data"], "domain_b", names, 1)}
    # What "not translated at all" scores: the two real domains against each other.
    between = float(score(["fid"], feats["a"][0], feats["b"][0], None, seed)["fid"])
    for fake, real, target in (("fake_b", "b", "b"), ("fake_a", "a", "a")):
        what = "G_AB(A) vs real B" if fake == "fake_b" else "G_BA(B) vs real A"
        fid = score(["fid"], feats[real][0], feats[fake][0], feats[fake][1], seed)["fid"]
        rows.append({"metric": f"fid_{fake}", "value": float(fid), "what": what, "real_a_vs_real_b_fid": round(between, 3), **protocol, **extractor.protocol()})
        probs = feats[fake][1]
        if probs is not None:
            share = float((np.argmax(probs, axis=1) == domains[target]).mean())
            real_share = float((np.argmax(feats[real][1], axis=1) == domains[target]).mean())
            rows.append({"metric": f"to_{target}", "value": share, "what": f"share of {'G_AB(A)' if target == 'b' else 'G_BA(B)'} the classifier calls domain {target.upper()}",
                         "real_images_share": round(real_share, 4), "domain_class": names[domains[target]] if names else domains[target], **protocol, **extractor.protocol()})
    return rows


def _domain(source, which: str, n) -> np.ndarray:
    images = source.domain_a if which == "a" else source.domain_b
    idx = _take(n, len(images))
    return source.examples(idx if which == "a" else np.zeros(0, int), np.zeros(0, int) if which == "a" else idx)[f"domain_{which}"]


def _class_of(data_cfg: dict, key: str, names: list, default: int) -> int:
    """The classifier's class for a domain: the class named like the domain's folder, else by order (A = 0, B = 1)."""
    folder = data_cfg.get(key)
    name = Path(folder).name if folder else None
    if name in names:
        return names.index(name)
    if names and len(names) != 2:
        raise UserError(f"the classifier's classes {names} do not name the domain folders; train it on the two domains (classes [A, B])")
    return default
