"""The final test-split runs of issue 11: three protocols side by side, with the defaults.

    OMP_NUM_THREADS=1 python benchmarks/final.py --rank 0 --world-size 2 &
    OMP_NUM_THREADS=1 python benchmarks/final.py --rank 1 --world-size 2
    python benchmarks/final.py --report

Each protocol is a ``siftlm bench`` folder under ``OUT`` (its own config.json, resumable
results, report):

- ``standard``: every method (``ALL_METHODS``), the whole memory, learning curves of nn
  and sift;
- ``lodo``: leave-one-domain-out (``exclude="same-domain"``), base, nn, sift,
  sift-adaptive;
- ``first-half``: ``query="first-half"`` (adapt to the first half, score the second),
  same methods, with the early stop where the validation sweep kept it.

The documents are taken in rounds of one per domain (``pick_documents``' order), and
every protocol finishes a round before the next starts, so that a run stopped part way
holds the same documents in all three. Equivalent to the three ``siftlm bench`` commands
of the README on all documents.

Results of the previous final run (``PREVIOUS``: lr 3e-4, variance gate 0.2) that the
current defaults reproduce bitwise are taken from it rather than recomputed
(``final_reuse.py`` says when; ``--verify N`` recomputes N of them per protocol and
fails if one differs); ``OUT/<protocol>/provenance-*.jsonl`` says for every result whether it
was reused, derived or computed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "heldout-final"
PREVIOUS = Path(__file__).resolve().parent / "results" / "heldout-test"
SWEEP = Path(__file__).resolve().parent / "sweep" / "heldout" / "sweep.json"
HELD_OUT_METHODS = ("base", "nn", "sift", "sift-adaptive")


def configs(rank: int = 0, world_size: int = 1) -> dict:
    """protocol -> BenchConfig (the package defaults; the early stop per the sweep)."""
    from siftlm.bench import BenchConfig
    from siftlm.bench.config import ALL_METHODS

    sweep = json.loads(SWEEP.read_text()) if SWEEP.exists() else {}
    early_stop = 5 if sweep.get("first_half", {}).get("early_stop") else None
    shared = {"split": "test", "rank": rank, "world_size": world_size, "progress": False}
    return {
        "standard": BenchConfig(
            methods=ALL_METHODS, curve_every=5, out=str(OUT / "standard"), **shared
        ),
        "lodo": BenchConfig(
            methods=HELD_OUT_METHODS,
            curve_methods=(),
            exclude="same-domain",
            out=str(OUT / "lodo"),
            **shared,
        ),
        "first-half": BenchConfig(
            methods=HELD_OUT_METHODS,
            curve_methods=(),
            query="first-half",
            early_stop=early_stop,
            out=str(OUT / "first-half"),
            **shared,
        ),
    }


def run(args: argparse.Namespace) -> None:
    from siftlm.bench.runner import open_store, pick_documents, prepare_run
    from siftlm.data import DOMAINS
    from siftlm.models import load_model

    by_protocol = configs(args.rank, args.world_size)
    first = next(iter(by_protocol.values()))
    model, tokenizer = load_model(first.model)
    store = open_store(first.store)
    documents = pick_documents(first)  # rounds: one document of every domain at a time
    shared = {"model": model, "tokenizer": tokenizer, "store": store, "documents": documents}
    with contextlib.ExitStack() as claims:  # each protocol's results held until the end
        runs = {}
        for protocol, config in by_protocol.items():
            prepared = prepare_run(config, **shared)
            runs[protocol] = Composer(prepared, claims.enter_context(prepared.claim()))
        if args.verify:
            for composer in runs.values():
                composer.verify(args.verify)
        rounds = -(-len(documents) // len(DOMAINS))
        for depth in range(1, rounds + 1):
            for protocol, composer in runs.items():
                print(f"== round {depth}/{rounds}: {protocol}", file=sys.stderr, flush=True)
                composer.run(documents[: depth * len(DOMAINS)])


class Composer:
    """One protocol's run: each (document, method) reused from ``PREVIOUS``, derived
    (sift-adaptive from sift) or computed (``final_reuse``). ``prepared``: the
    protocol's ``PreparedRun``; ``results``: its results file, claimed by the caller
    (``PreparedRun.claim``) for as long as the composer runs."""

    def __init__(self, prepared, results) -> None:
        from final_reuse import load

        from siftlm.bench.runner import shard
        from siftlm.training import TTTConfig

        self.config = config = prepared.config
        self.trainers = prepared.trainers
        self.shard = shard
        out = prepared.out
        self.results = results
        self.previous, saved = load(PREVIOUS / out.name)
        self.previous_ttt = {}
        for method, values in saved.get("ttt", {}).items():
            self.previous_ttt[method] = TTTConfig.from_dict({"variance_lr": None, **values})
        self.provenance = out / f"provenance-{config.rank}-of-{config.world_size}.jsonl"
        self.new = {}  # doc_id -> this run's sift result (for sift-adaptive)
        if self.results.path.exists():
            from siftlm.bench import load_results

            found = load_results(self.results.path).get("sift", [])
            self.new.update({r.doc_id: r for r in found})

    def _reusable(self, method: str, doc_id: str) -> dict | None:
        from final_reuse import reusable

        record = self.previous.get((method, doc_id))
        ttt = self.config.ttt_config(method)
        if record is not None and reusable(ttt, self.previous_ttt.get(method), record):
            return record
        return None

    def run(self, documents) -> None:
        from final_reuse import derived_adaptive

        from siftlm.bench.runner import evaluate_document
        from siftlm.training import DocumentResult

        mine = self.shard(documents, self.config.rank, self.config.world_size)
        for document in mine:
            for method in self.config.methods:
                if (method, document.id) in self.results:
                    continue
                record = self._reusable(method, document.id)
                sift = self.new.get(document.id)
                if record is not None:
                    result, how = DocumentResult.from_dict(record), "reused"
                elif (
                    method == "sift-adaptive"
                    and sift is not None
                    and derived_adaptive(self.previous, document.id)
                ):
                    result, how = dataclasses.replace(sift, method=method), "derived"
                else:
                    result = evaluate_document(self.trainers, self.config, document, method)
                    how = "computed"
                if method == "sift":
                    self.new[document.id] = result
                self.results.append(result)
                with open(self.provenance, "a") as handle:  # after the result: never ahead
                    handle.write(json.dumps([method, document.id, how]) + "\n")

    def verify(self, count: int) -> None:
        """Recompute ``count`` reusable trained results (and one gated) of the previous
        run; any difference is an error."""
        import random

        from siftlm.bench.runner import evaluate_document
        from siftlm.data import load_corpus

        by_id = {d.id: d for d in load_corpus(self.config.split)}
        trained, gated = [], []
        for (method, doc_id), record in sorted(self.previous.items()):
            if method in ("nn", "sift") and self._reusable(method, doc_id) is not None:
                (trained if record["steps"] else gated).append((method, doc_id, record))
        picks = random.Random(self.config.rank).sample(trained, min(count, len(trained)))
        for method, doc_id, record in picks + gated[:1]:
            result = evaluate_document(self.trainers, self.config, by_id[doc_id], method)
            if result.nll_nats != record["nll_nats"]:
                raise SystemExit(
                    f"{method} {doc_id}: {result.nll_nats} now, {record['nll_nats']} before"
                )
            print(f"verified {Path(self.config.out).name} {method} {doc_id}", file=sys.stderr)


def report(_: argparse.Namespace) -> None:
    from siftlm.bench import make_report

    for protocol in configs():
        folder = OUT / protocol
        if folder.exists():
            make_report(folder)
            print(f"{folder}/report.md")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--world-size", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="only (re)make the reports")
    parser.add_argument(
        "--verify", type=int, default=0, help="recompute N reused results per protocol first"
    )
    args = parser.parse_args(argv)
    (report if args.report else run)(args)


if __name__ == "__main__":
    main()
