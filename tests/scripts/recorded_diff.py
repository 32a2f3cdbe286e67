"""Print, for every case of tests/test_recorded_values.py, the largest relative difference between
what the code computes now and what was recorded (0.0 = bit-identical). The test itself allows 1e-5.

usage: python tests/scripts/recorded_diff.py
"""

import json
import sys
from pathlib import Path

import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
tf.config.run_functions_eagerly(True)  # as the test's eager fixture

import test_recorded_values as recorded  # noqa: E402


def main() -> None:
    then = json.loads(recorded.RECORD.read_text())
    for name, case in recorded.CASES.items():
        now = recorded._run(case, case.get("compiled", False))
        worst = 0.0
        for step_now, step_then in zip(now["losses"], then[name]["losses"]):
            worst = max([worst] + [abs(step_now[k] - v) / max(abs(v), 1e-12) for k, v in step_then.items()])
        for net, values in then[name]["weights"].items():
            worst = max([worst] + [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(now["weights"][net], values)])
        print(f"{name}: max relative difference {worst}")


if __name__ == "__main__":
    main()
