"""``siftlm bench --ray [ADDRESS]``: the benchmark's documents as tasks on Ray actors.

Each actor loads the model and the store once (from ``config.model`` / the store's
folder, or receives the objects a caller passed in) and evaluates one document per task:
every method of the configuration not yet done for it, with the runner's own
:func:`~siftlm.bench.runner.evaluate_document`, so the results are those of a local run.
This process is the only writer: it appends each document's results to the same
``results.jsonl`` as a local run as its task finishes, skipping any (method, document)
already there, so a task that Ray retries (a lost actor is restarted, its task run
again) never writes a line twice, and a rerun resumes after the last finished result.
The report is made from that file as for a local run. Ray is imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from siftlm.bench.config import BenchConfig
from siftlm.bench.results import ResultsFile

if TYPE_CHECKING:
    from siftlm.data import Document

# restarts of a lost actor, and retries of its task, before the run fails
_RETRIES = 3


class BenchWorker:
    """A Ray actor holding a model, a store and one trainer per method."""

    def __init__(self, config: BenchConfig, model=None, tokenizer=None, store=None):
        from siftlm.bench.runner import make_trainers, open_store

        if model is None or tokenizer is None:
            from siftlm.models import load_model

            model, tokenizer = load_model(config.model)
        model.eval()
        if isinstance(store, (str, Path)):
            from siftlm.datastore.sharded import open_any

            store = open_any(store, verify=False)  # the driver verified it
        elif store is None and any(m != "base" for m in config.methods):
            store = open_store(config.store)
        self.config = config
        self.trainers = make_trainers(config, model, tokenizer, store)

    def evaluate(self, document: Document, methods: list[str]) -> list[dict]:
        """The results (``DocumentResult.to_dict()``) of ``methods`` on ``document``, in order."""
        from siftlm.bench.runner import evaluate_document

        return [
            evaluate_document(self.trainers, self.config, document, method).to_dict()
            for method in methods
        ]


def _actor_options(ray) -> tuple[int, dict]:
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    per_actor = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
    count = gpus or max(1, int(resources.get("CPU", 1)))
    return count, {**per_actor, "max_restarts": _RETRIES, "max_task_retries": _RETRIES}


def run_bench_ray(
    config: BenchConfig,
    address: bool | str = True,
    *,
    model=None,
    tokenizer=None,
    store=None,
    documents=None,
    actors: int | None = None,
) -> Path:
    """:func:`~siftlm.bench.runner.run_bench` with the documents spread over Ray actors.

    ``address``: the cluster's, or True for ``ray.init()``'s default (an initialised Ray
    is used as it is). ``actors``: how many (default: one per GPU, else one per CPU).
    """
    from siftlm.bench.runner import open_store, prepare_run
    from siftlm.datastore.ray_embed import connect

    if config.world_size != 1:
        raise ValueError("--ray shares the documents itself: leave out --rank/--world-size")
    if config.memory_fraction < 1 or config.duplicates:
        raise ValueError("--ray does not apply --memory-fraction/--duplicates: run without --ray")
    if store is None and any(m != "base" for m in config.methods):
        store = open_store(config.store)
    # validates everything (an --out that is a file; loads the model here, for the
    # record) before writing
    run = prepare_run(config, model=model, tokenizer=tokenizer, store=store, documents=documents)
    with run.claim() as results:
        tasks = [
            (d, [m for m in config.methods if (m, d.id) not in results]) for d in run.documents
        ]
        tasks = [(d, methods) for d, methods in tasks if methods]
        if tasks:
            # a store with a folder is reopened there by each actor; objects are shipped
            shipped = getattr(store, "path", None) or store
            objects = (model, tokenizer, shipped)
            _run_tasks(connect(address), config, tasks, results, actors, objects)
    return run.out


def _run_tasks(ray, config, tasks, results: ResultsFile, actors, objects) -> None:
    from ray.util import ActorPool
    from tqdm.auto import tqdm

    from siftlm.training import DocumentResult

    count, options = _actor_options(ray)
    count = min(actors or count, len(tasks))
    model, tokenizer, store = (ray.put(x) if x is not None else None for x in objects)
    remote = ray.remote(BenchWorker).options(**options)
    workers = [remote.remote(config, model, tokenizer, store) for _ in range(count)]
    pool = ActorPool(workers)
    total = sum(len(methods) for _, methods in tasks)
    bar = tqdm(total=total, desc="bench on ray", unit="run", disable=not config.progress)
    try:
        work = pool.map_unordered(lambda actor, task: actor.evaluate.remote(*task), tasks)
        for records in work:
            for record in records:
                result = DocumentResult.from_dict(record)
                if (result.method, result.doc_id) not in results:
                    results.append(result)
                bar.update()
    finally:
        bar.close()
        for worker in workers:
            ray.kill(worker)
