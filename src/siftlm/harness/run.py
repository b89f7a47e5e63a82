"""``siftlm eval``: lm-evaluation-harness's own ``run`` arguments, with the ``siftlm``
model registered, the shipped tasks on the include path and nothing from a hub.

It parses the arguments with the harness's own parser (``lm_eval._cli.run.Run``), so
every ``lm_eval run`` option means the same here. Differences from ``lm_eval``: the
default model is ``siftlm``; ``siftlm.harness.TASKS_DIR`` is always on the include
path (besides any ``--include_path``); ``HF_DATASETS_OFFLINE=1``; and with ``siftlm``
each logged sample gets ``ttft``, one entry per request of the sample (method, steps,
selected memory ids, uncertainty before and after, seconds).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def parse_harness_args(argv: list[str]) -> argparse.Namespace:
    """The namespace that ``lm_eval run ARGV`` would parse."""
    from lm_eval._cli.run import Run

    parser = argparse.ArgumentParser(prog="siftlm eval")
    commands = parser.add_subparsers(dest="command")
    Run.create(commands)
    return parser.parse_args(["run", *argv])


def attach_facts(samples: dict[str, list[dict]], facts: dict) -> int:
    """Add ``ttft`` (a list over the sample's requests, in request order) to every logged
    sample whose requests the backend recorded; returns the number of samples touched."""
    by_doc: dict[tuple[str, int], list[tuple[int, dict]]] = {}
    for (task, doc_id, idx), fact in facts.items():
        by_doc.setdefault((task, doc_id), []).append((idx, fact))
    touched = 0
    for task, task_samples in samples.items():
        for sample in task_samples:
            found = by_doc.get((task, sample["doc_id"]))
            if found:
                sample["ttft"] = [fact for _, fact in sorted(found, key=lambda x: x[0])]
                touched += 1
    return touched


def _task_manager(cfg):
    """The harness's task manager. When every task asked for is a shipped one (and no
    other include path is given), the harness's own thousands of task files are not
    indexed (that takes a minute on a small machine); otherwise ``cfg.process_tasks``."""
    from lm_eval.tasks import TaskManager

    from siftlm.harness import TASKS_DIR

    tasks = cfg.tasks.split(",") if isinstance(cfg.tasks, str) else list(cfg.tasks or [])
    tasks = [name for entry in tasks for name in entry.split(",") if name]
    if tasks and cfg.include_path == [str(TASKS_DIR)]:
        shipped = TaskManager(
            include_path=str(TASKS_DIR), include_defaults=False, metadata=cfg.metadata or {}
        )
        if all(shipped.match_tasks([name]) for name in tasks):
            cfg.tasks = list(dict.fromkeys(m for n in tasks for m in shipped.match_tasks([n])))
            return shipped
    return cfg.process_tasks(cfg.metadata)


def _model(cfg) -> Any:
    """The model for ``simple_evaluate``: a ``SiftLM`` built here (so that its facts can
    be logged), or the name of another harness model."""
    if cfg.model != "siftlm":
        return cfg.model
    from siftlm.harness.model import SiftLM

    extra = {
        "batch_size": cfg.batch_size,
        "max_batch_size": cfg.max_batch_size,
        "device": cfg.device,
    }
    return SiftLM.create_from_arg_obj(dict(cfg.model_args or {}), extra)


def run_eval(argv: list[str]) -> dict | None:
    """Run the harness on ``argv`` (``lm_eval run`` arguments); prints the tables like
    ``lm_eval`` and saves results (and samples) under ``--output_path``; returns the
    results dictionary."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import siftlm.harness.model  # noqa: F401  (registers "siftlm")
    from siftlm.harness import TASKS_DIR

    args = parse_harness_args(argv)
    if args.model is None:
        args.model = "siftlm"
    from lm_eval.config.evaluate_config import EvaluatorConfig

    cfg = EvaluatorConfig.from_cli(args)
    cfg.include_path = [str(TASKS_DIR), *([cfg.include_path] if cfg.include_path else [])]
    return _evaluate(cfg)


def _print_tables(cfg, results: dict, make_table) -> None:
    """The harness's own summary: the run's line, the task table, the group table."""
    name = cfg.model if isinstance(cfg.model, str) else type(cfg.model).__name__
    print(
        f"{name} ({cfg.model_args}), limit: {cfg.limit}, num_fewshot: {cfg.num_fewshot}, "
        f"batch_size: {cfg.batch_size}"
    )
    print(make_table(results))
    if "groups" in results:
        print(make_table(results, "groups"))


def _evaluate(cfg) -> dict | None:
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.utils import handle_non_serializable, make_table

    if cfg.output_path:
        cfg.hf_hub_log_args["output_path"] = cfg.output_path
    tracker = EvaluationTracker(**cfg.hf_hub_log_args)
    task_manager = _task_manager(cfg)
    model = _model(cfg)
    seeds = cfg.seed or [None] * 4
    results = simple_evaluate(
        model=model,
        model_args=cfg.model_args,
        tasks=cfg.tasks,
        num_fewshot=cfg.num_fewshot,
        batch_size=cfg.batch_size,
        max_batch_size=cfg.max_batch_size,
        device=cfg.device,
        use_cache=cfg.use_cache,
        limit=cfg.limit,
        samples=cfg.samples,
        check_integrity=cfg.check_integrity,
        write_out=cfg.write_out,
        log_samples=cfg.log_samples,
        evaluation_tracker=tracker,
        system_instruction=cfg.system_instruction,
        apply_chat_template=cfg.apply_chat_template,
        fewshot_as_multiturn=cfg.fewshot_as_multiturn,
        gen_kwargs=cfg.gen_kwargs,
        task_manager=task_manager,
        verbosity=cfg.verbosity,
        predict_only=cfg.predict_only,
        random_seed=seeds[0],
        numpy_random_seed=seeds[1],
        torch_random_seed=seeds[2],
        fewshot_random_seed=seeds[3],
        confirm_run_unsafe_code=cfg.confirm_run_unsafe_code,
        metadata=cfg.metadata,
    )
    if results is None:  # not rank 0
        return None
    samples = results.pop("samples", None) if cfg.log_samples else None
    if samples is not None and hasattr(model, "facts"):
        attach_facts(samples, model.facts)
    if cfg.show_config:
        print(json.dumps(results, indent=2, default=handle_non_serializable, ensure_ascii=False))
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in samples or {}:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    _print_tables(cfg, results, make_table)
    if samples is not None:
        results["samples"] = samples
    return results
