"""Generate math Q&A batches with DeepMind's ``mathematics_dataset`` (run in its own venv).

This script is executed by the corpus builder with the Python interpreter of a throwaway
virtual environment holding ``mathematics-dataset`` and ``sympy==1.5.1`` (newer sympy
breaks the generator). It imports nothing from siftlm and writes one JSON object per
line to stdout: ``{"module": ..., "batch": ..., "text": ...}``.

Every batch re-seeds ``random`` and ``numpy.random`` from (seed, module, batch) so that
the output does not depend on the order or the number of batches generated.

Usage: python _mathgen.py SEED BATCHES_PER_MODULE PAIRS_PER_BATCH [WORKER NUM_WORKERS]

With WORKER/NUM_WORKERS only the modules with index % NUM_WORKERS == WORKER are run.
"""

import hashlib
import json
import random
import sys

import numpy as np

# mathematics_dataset (2019) uses aliases that numpy 1.24 removed; numpy 2 also lacks
# ndarray.itemset, so the venv pins numpy 1.26 and these aliases are restored here.
for _alias, _type in (("object", object), ("int", int), ("float", float), ("bool", bool)):
    if _alias not in np.__dict__:
        setattr(np, _alias, _type)

from mathematics_dataset import generate_settings  # noqa: E402 - after the numpy shim
from mathematics_dataset.modules import modules  # noqa: E402


def _entropy_fn(level, num_levels):
    lower, upper = level / num_levels, (level + 1) / num_levels

    def modify(range_):
        length = range_[1] - range_[0]
        return (range_[0] + lower * length, range_[0] + upper * length)

    return modify


def _flatten(tree, prefix):
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}__{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


def _sample(module):
    """One (question, answer) pair, or None when the module keeps failing.

    Under Python 3 and current numpy some generators raise inside sympy 1.5.1 for a
    fraction of the draws (numpy integers where sympy wants ints); such draws are
    skipped like the over-long ones, which keeps the output deterministic.
    """
    for _ in range(50):
        try:
            problem = module()
        except Exception:  # noqa: BLE001 - any failure of the 2019 generator is a dropped draw
            continue
        question, answer = str(problem.question), str(problem.answer)
        if len(question) > generate_settings.MAX_QUESTION_LENGTH:
            continue
        if len(answer) > generate_settings.MAX_ANSWER_LENGTH:
            continue
        return question, answer
    return None


def main():
    seed, batches, pairs = (int(arg) for arg in sys.argv[1:4])
    worker, num_workers = (int(arg) for arg in sys.argv[4:6]) if len(sys.argv) > 4 else (0, 1)
    regimes = {
        "train-easy": modules.train(_entropy_fn(0, 3)),
        "train-medium": modules.train(_entropy_fn(1, 3)),
        "train-hard": modules.train(_entropy_fn(2, 3)),
    }
    flat = {}
    for regime, tree in regimes.items():
        for name, module in _flatten(tree, "").items():
            flat[f"{regime}/{name}"] = module
    for index, name in enumerate(sorted(flat)):
        if index % num_workers != worker:
            continue
        for batch in range(batches):
            digest = hashlib.sha256(f"{seed}/{name}/{batch}".encode()).digest()
            state = int.from_bytes(digest[:4], "little")
            random.seed(state)
            np.random.seed(state)  # noqa: NPY002 - the generator draws from the global RNG
            lines = []
            for _ in range(pairs):
                pair = _sample(flat[name])
                if pair is None:
                    break
                lines.append(f"Question: {pair[0]}\nAnswer: {pair[1]}\n")
            if not lines:
                continue
            record = {"module": name, "batch": batch, "text": "\n".join(lines)}
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
