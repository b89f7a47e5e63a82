"""Generate math Q&A batches with DeepMind's ``mathematics_dataset`` (run in its own venv).

This script is executed by the corpus builder with the Python interpreter of a throwaway
virtual environment holding ``mathematics-dataset`` and ``sympy==1.5.1`` (newer sympy
breaks the generator). It imports nothing from siftlm and writes one JSON object per
line to stdout: ``{"module": ..., "batch": ..., "text": ...}``.

Every batch re-seeds ``random`` and ``numpy.random`` from (seed, module, batch) so that
the output does not depend on the order or the number of batches generated.

Usage:
    python _mathgen.py --list                         # the module names, one per line
    python _mathgen.py SEED BATCHES PAIRS MODULE...   # JSONL for these modules

The builder runs one process per module: besides the per-batch seeding, some state of
the 2019 generator and of sympy carries over from one module to the next within a
process, so a module's output is only reproducible when it starts from a fresh process.
"""

import hashlib
import json
import os
import random
import sys

# sympy iterates over sets of symbols: with Python's per-process string hashing the
# generator would name its variables differently on every run.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, *sys.argv])

import numpy as np  # noqa: E402

# mathematics_dataset (2019) uses aliases that numpy 1.24 removed; numpy 2 also lacks
# ndarray.itemset, so the venv pins numpy 1.26 and these aliases are restored here.
for _alias, _type in (("object", object), ("int", int), ("float", float), ("bool", bool)):
    if _alias not in np.__dict__:
        setattr(np, _alias, _type)

from mathematics_dataset import generate_settings  # noqa: E402 - after the numpy shim
from mathematics_dataset.modules import modules  # noqa: E402
from mathematics_dataset.util import composition  # noqa: E402
from sympy import Dummy  # noqa: E402
from sympy.core.cache import clear_cache  # noqa: E402


def _expand_entities(context, **kwargs):
    """``composition.expand_entities`` without its set of entities.

    The original puts Entity objects (hashed by memory address) into a set before
    shuffling them, so the order of the "Let ... be ..." clauses changed from run to run.
    This version dedupes in first-seen order; everything else is the same.
    """
    kwargs = kwargs.copy()
    entities = dict.fromkeys(context.child_entities)
    for key, maybe_entity in kwargs.items():
        if isinstance(maybe_entity, composition.Entity):
            entities[maybe_entity] = None
            kwargs[key] = maybe_entity.handle
    entities = list(entities)
    random.shuffle(entities)
    descriptions = []
    for entity in entities:
        descriptions.append(entity.child_description)
        if not entity.expression_used:
            descriptions.append(entity.description)
    return " ".join(text for text in descriptions if text), kwargs


composition.expand_entities = _expand_entities


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


def _all_modules():
    regimes = {
        "train-easy": modules.train(_entropy_fn(0, 3)),
        "train-medium": modules.train(_entropy_fn(1, 3)),
        "train-hard": modules.train(_entropy_fn(2, 3)),
    }
    flat = {}
    for regime, tree in regimes.items():
        for name, module in _flatten(tree, "").items():
            flat[f"{regime}/{name}"] = module
    return flat


def main():
    flat = _all_modules()
    if sys.argv[1:] == ["--list"]:
        sys.stdout.write("".join(f"{name}\n" for name in sorted(flat)))
        return
    seed, batches, pairs = (int(arg) for arg in sys.argv[1:4])
    for name in sys.argv[4:]:
        for batch in range(batches):
            digest = hashlib.sha256(f"{seed}/{name}/{batch}".encode()).digest()
            state = int.from_bytes(digest[:4], "little")
            # sympy state that would carry over from earlier batches or differ per process:
            # its cache (term order) and the numbering of Dummy symbols (their sort keys,
            # which start at a random offset drawn when sympy is imported)
            clear_cache()
            Dummy._count = 0
            Dummy._base_dummy_index = 10**6
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
