"""Reference points for domain-classifier FID: real train vs real test (the floor) and noise vs test.

    python benchmarks/fid_floor.py --mnist ../shared/data/mnist [--n 10000] [--loader fashion_mnist]
    python benchmarks/fid_floor.py --config configs/dcgan_cifar10.yaml --n 1000   # a config's data and eval extractor

A generator's FID against the test split cannot be expected below the train-vs-test floor.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gantrain.config import load_config
from gantrain.data import held_out_split, load_dataset
from gantrain.evaluate import default_extractor_name, real_features, resolve_extractor
from gantrain.extractors import get_extractor
from gantrain.metrics import feature_statistics, frechet_distance, kernel_inception_distance


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", default=None, help="data.root for the loader (IDX folder)")
    p.add_argument("--loader", default="mnist")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--config", default=None, help="use this config's data (its training part vs its test split or held-out "
                   "part) and its eval.extractor / eval.weights instead of --loader")
    a = p.parse_args()
    t0 = time.perf_counter()
    if a.config:
        cfg = load_config(a.config)
        data = {k: v for k, v in cfg["data"].items() if k not in ("batch_size", "labeled_per_class")}
        train = load_dataset(data)
        test = held_out_split(cfg["data"]) or load_dataset({**data, "split": "test"})
        extractor = resolve_extractor(cfg["eval"]["extractor"], cfg["eval"]["weights"], data["loader"], train.image_shape)
        a.loader = f"{a.config} ({data['loader']})"
    else:
        extractor = get_extractor(default_extractor_name(a.loader))
        data = {"loader": a.loader, "root": a.mnist}
        train = load_dataset({**data, "split": "train"})
        test = load_dataset({**data, "split": "test"})
    f_train, _, _ = real_features(train, {**data, "split": "train"}, a.n, extractor, use_cache=False)
    f_test, _, _ = real_features(test, {**data, "split": "test"}, a.n, extractor, use_cache=False)
    noise = np.random.default_rng(0).uniform(-1, 1, (a.n, *train.image_shape)).astype(np.float32)
    f_noise, _ = extractor(noise)
    floor = frechet_distance(*feature_statistics(f_train), *feature_statistics(f_test))
    kid, kid_std = kernel_inception_distance(f_train, f_test)
    noise_fid = frechet_distance(*feature_statistics(f_noise), *feature_statistics(f_test))
    print(f"{a.loader}, extractor {extractor.name} (sha256 {extractor.protocol()['weights_sha256']}), n = {a.n} per side:")
    print(f"  FID real train vs real test (floor): {floor:.3f}   KID {kid:.4f} +- {kid_std:.4f}")
    print(f"  FID uniform noise vs real test:      {noise_fid:.1f}")
    print(f"  {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
