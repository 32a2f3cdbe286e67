"""Reference points for domain-classifier FID: real train vs real test (the floor) and noise vs test.

    python benchmarks/fid_floor.py --mnist ../shared/data/mnist [--n 10000] [--loader fashion_mnist]

A generator's FID against the test split cannot be expected below the train-vs-test floor.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gantrain.data import load_dataset
from gantrain.evaluate import default_extractor_name, real_features
from gantrain.extractors import get_extractor
from gantrain.metrics import feature_statistics, frechet_distance, kernel_inception_distance


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", default=None, help="data.root for the loader (IDX folder)")
    p.add_argument("--loader", default="mnist")
    p.add_argument("--n", type=int, default=10000)
    a = p.parse_args()
    extractor = get_extractor(default_extractor_name(a.loader))
    t0 = time.perf_counter()
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
