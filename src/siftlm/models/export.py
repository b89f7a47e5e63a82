"""Export a finished pretraining run as a house model: float16 safetensors, tokenizer,
resolved configuration, bits per byte on the corpus splits, and a model card.

    python -m siftlm.models.export runs/house-small models/house-small --name house-small
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from siftlm.models.pretrain import LOG, RESOLVED_CONFIG, token_byte_lengths


def split_bpb(
    model: Any,
    tokenizer: Any,
    split: str,
    max_tokens_per_doc: int | None,
    corpus_dir: str | None = None,
) -> dict[str, Any]:
    """Bits per byte of a corpus split (ratio of sums, rolling windows over the context).

    With ``max_tokens_per_doc``, each document is cut to its first that many tokens and
    only the bytes of those tokens count.
    """
    from siftlm.data import load_corpus
    from siftlm.evaluation.bpb import prefix_token_id, resolve_max_length, score_tokens

    documents = load_corpus(split, corpus_dir=corpus_dir)
    byte_lengths = token_byte_lengths(tokenizer)
    max_length = resolve_max_length(model, None)
    prefix = prefix_token_id(tokenizer)
    nll, n_bytes, n_tokens, truncated = 0.0, 0, 0, 0
    start = time.time()
    for document in documents:
        ids = tokenizer(document.text, add_special_tokens=False)["input_ids"]
        if max_tokens_per_doc is not None and len(ids) > max_tokens_per_doc:
            ids = ids[:max_tokens_per_doc]
            truncated += 1
            n_bytes += int(byte_lengths[ids].sum())
        else:
            n_bytes += len(document.text.encode("utf-8"))
        doc_nll, doc_tokens = score_tokens(model, ids, prefix, max_length)
        nll += doc_nll
        n_tokens += doc_tokens
    return {
        "split": split,
        "bpb": nll / (math.log(2) * n_bytes),
        "documents": len(documents),
        "truncated_documents": truncated,
        "max_tokens_per_doc": max_tokens_per_doc,
        "tokens": n_tokens,
        "bytes": n_bytes,
        "seconds": round(time.time() - start, 1),
    }


def export(run: Path, dest: Path, dtype: torch.dtype = torch.float16) -> None:
    """Copy the run's final weights (cast to ``dtype``), tokenizer and logs into ``dest``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(run, dtype=torch.float32).to(dtype)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    # the tokenizer already in dest (the house tokenizer) must be the one trained with
    tokenizer = AutoTokenizer.from_pretrained(run)
    if (dest / "tokenizer.json").is_file():
        same = json.loads((dest / "tokenizer.json").read_text()) == json.loads(
            (run / "tokenizer.json").read_text()
        )
        if not same:
            raise ValueError(f"{run} was trained with another tokenizer than {dest}'s")
    else:
        tokenizer.save_pretrained(dest)
    shutil.copy(run / RESOLVED_CONFIG, dest / RESOLVED_CONFIG)
    shutil.copy(run / LOG, dest / "training_log.jsonl")


CARD = """\
# {name}

A GPT-2 style causal language model trained from scratch by siftlm (issue 5) as a base
model for test-time fine-tuning. Load it like any Hugging Face model:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("models/{name}")
tokenizer = AutoTokenizer.from_pretrained("models/{name}")
# or: from siftlm.models import load_model; model, tokenizer = load_model("{name}")
```

| | |
| --- | --- |
| architecture | `GPT2LMHeadModel`: {n_layer} layers, width {n_embd}, {n_head} heads, context {context}, tied embeddings, no dropout |
| parameters | {n_parameters:,} |
| tokenizer | byte-level BPE, {vocab_size:,} tokens, trained on the pretrain split (`siftlm tokenizer train --vocab-size 8192`; identical in house-small and house-medium) |
| data | {data}: {train_documents:,} documents, {train_tokens_available:,} tokens |
| tokens seen | {tokens_seen:,} ({steps:,} steps of {tokens_per_step:,} tokens; {epochs:.2f} epochs) |
| recipe | AdamW (betas ({betas[0]}, {betas[1]}), eps 1e-8, weight decay {weight_decay} on matrices), batch {batch_size} x {context} tokens, lr {lr:g} with {warmup_steps} warmup steps then cosine to {min_lr:.2g}, grad clip {grad_clip}, seed {seed} |
| training time | {train_hours:.2f} h on {threads} CPU thread(s) of a shared 2-core machine |
| weights | float16 safetensors (trained in float32) |

## Bits per byte

Measured on the shipped float16 weights loaded in float32, with
`siftlm.evaluation.bpb.score_tokens` (rolling windows of {context} tokens, each token
scored once, the first conditioned on `<|endoftext|>`), as a ratio of sums over
documents. {truncation_note}

| split | documents | tokens scored | bytes | bits per byte |
| --- | --- | --- | --- | --- |
{eval_rows}

{schedule_note}

## How it was trained

```bash
{command}
python -m siftlm.models.export runs/{name} models/{name}{limit_flag}  # this card's numbers
```

`pretrain_config.json` holds the resolved configuration and `training_log.jsonl` the
loss, learning rate, throughput and validation bits per byte (first {context_minus_one}
tokens of {eval_docs} validation documents) during training.
"""


def write_card(dest: Path, name: str, command: str, schedule_note: str = "") -> None:
    """README.md of a house model from its pretrain_config.json and eval.json."""
    from siftlm.models.sizes import SIZES

    summary = json.loads((dest / RESOLVED_CONFIG).read_text())
    results = json.loads((dest / "eval.json").read_text())
    shape = SIZES[summary["size"]]
    rows = "\n".join(
        f"| {r['split']} | {r['documents']:,} | {r['tokens']:,} | {r['bytes']:,} | {r['bpb']:.4f} |"
        for r in results.values()
    )
    limits = {r["max_tokens_per_doc"] for r in results.values()}
    truncated = sum(r["truncated_documents"] for r in results.values())
    limit = next(iter(limits))
    if limit is None or truncated == 0:
        note = "Every document is scored in full."
    else:
        note = (
            f"Every document of the full splits is scored, but only its first {limit} tokens "
            f"({truncated} documents were longer and were cut; only the bytes of the tokens "
            "kept are counted)."
        )
    text = CARD.format(
        name=name,
        n_layer=shape.n_layer,
        n_embd=shape.n_embd,
        n_head=shape.n_head,
        epochs=summary["tokens_seen"] / summary["train_tokens_available"],
        min_lr=summary["lr"] * summary["min_lr_ratio"],
        train_hours=summary["train_seconds"] / 3600,
        truncation_note=note,
        eval_rows=rows,
        command=command,
        limit_flag=f" --max-tokens-per-doc {limit}" if limit is not None else "",
        schedule_note=schedule_note,
        context_minus_one=summary["context"] - 1,
        **{k: v for k, v in summary.items() if k not in {"name"}},
    )
    (dest / "README.md").write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m siftlm.models.export")
    parser.add_argument("run", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument(
        "--max-tokens-per-doc", type=int, default=None, help="score only the first N tokens"
    )
    parser.add_argument("--splits", nargs="+", default=["validation", "test"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--corpus-dir", default=None, help="split files (default: committed)")
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--name", default=None, help="model card title (default: dest name)")
    parser.add_argument("--command", default=None, help="training command for the card")
    parser.add_argument("--schedule-note", default="")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.skip_export:
        export(args.run, args.dest)
    from siftlm.models.loading import load_model

    # evaluate the shipped (float16) weights, upcast as users load them
    model, tokenizer = load_model(args.dest)
    results = {}
    for split in args.splits:
        results[split] = split_bpb(
            model, tokenizer, split, args.max_tokens_per_doc, args.corpus_dir
        )
        print(json.dumps(results[split]), flush=True)
    # merged with earlier results, so splits can be evaluated by parallel processes
    eval_path = args.dest / "eval.json"
    merged = json.loads(eval_path.read_text()) if eval_path.is_file() else {}
    merged.update(results)
    eval_path.write_text(json.dumps(merged, indent=2) + "\n")
    if args.command:
        write_card(args.dest, args.name or args.dest.name, args.command, args.schedule_note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
