"""Embedding a build's missing shards with Ray Data (``siftlm index build --ray [ADDRESS]``).

The build (:mod:`siftlm.datastore.build`) decides which shards still need vectors, as
without Ray: finished shard files, an earlier plan's shards and precomputed vectors are
used first. Only the texts left are sent here, one Ray Data row per shard; an actor pool
of embedders (``map_batches`` with a callable class, one GPU per actor where the cluster
has GPUs, otherwise one CPU each, leaving one CPU for Ray Data's own tasks) embeds a
shard per call with the same ``encode(texts, batch_size)`` as a local build, so the
vectors are the same. Shards come back as they finish and the build saves each one at
once (atomically), so a killed run, or one that lost a worker, resumes and embeds only
what is missing: Ray retries the shards of a lost actor, and a rerun the shards that
never came back.

Every actor loads the embedder from its spec (a model name or a folder that each node
can read) and checks that its weights hash to the revision of the build's plan, so a
node with other weights fails instead of mixing vectors. Ray is imported only here.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def connect(address: bool | str | None):
    """The ``ray`` module, connected: to ``address`` (a string), or by ``ray.init()``'s own
    rules (True/None: ``RAY_ADDRESS`` or a new local instance). An already initialised
    Ray is used as it is."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "--ray needs Ray Data: pip install 'siftlm[ray]' (or 'ray[data]')"
        ) from error
    if not ray.is_initialized():
        ray.init(address=address if isinstance(address, str) and address else None)
    return ray


class ShardEmbedder:
    """A Ray Data actor: loads the embedder once, embeds one shard's texts per row."""

    def __init__(self, spec: str, revision: str, batch_size: int, device: str):
        from siftlm.datastore.embedders import load_embedder

        self.embedder = load_embedder(spec, device=device)
        if revision != "unknown" and self.embedder.revision != revision:
            raise ValueError(
                f"embedder {spec!r} on this Ray worker has weights {self.embedder.revision}, "
                f"the build's plan {revision}: every node must hold the same model"
            )
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = [
            self.embedder.encode([str(t) for t in texts], self.batch_size)
            for texts in batch["texts"]
        ]
        return {
            "shard": np.asarray(batch["shard"], np.int64),
            "rows": np.array([len(v) for v in vectors], np.int64),
            "vectors": np.array([v.astype(np.float32).tobytes() for v in vectors], object),
        }


def _pool(ray) -> tuple[int, float, float, str]:
    """(actors, CPUs per actor, GPUs per actor, device) for the cluster's resources."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return gpus, 1.0, 1.0, "cuda"
    return max(1, int(resources.get("CPU", 1)) - 1), 1.0, 0.0, "cpu"


def embed_shards(
    jobs: dict[int, list[str]],
    embedder: str,
    plan: dict,
    batch_size: int,
    address: bool | str,
    show_progress: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(shard, vectors)`` as shards finish, in any order; ``vectors`` is
    (len(jobs[shard]), d) float32, L2-normalised, row j the embedding of ``jobs[shard][j]``.

    ``embedder``: a spec string (an embedder object cannot be sent to other machines);
    ``plan``: the build's plan (its ``revision`` is checked on every actor).
    """
    if not isinstance(embedder, str):
        raise ValueError(
            "--ray needs the embedder as a spec (a model name or a folder every node can "
            f"read), not an object ({embedder!r})"
        )
    ray = connect(address)
    from ray import data as ray_data

    ray_data.DataContext.get_current().enable_progress_bars = show_progress
    n_actors, cpus, gpus, device = _pool(ray)
    rows = [{"shard": i, "texts": texts} for i, texts in sorted(jobs.items())]
    dataset = ray_data.from_items(rows, override_num_blocks=len(rows))
    embedded = dataset.map_batches(
        ShardEmbedder,
        fn_constructor_kwargs={
            "spec": embedder,
            "revision": plan["revision"],
            "batch_size": batch_size,
            "device": device,
        },
        batch_size=1,
        batch_format="numpy",
        concurrency=min(n_actors, len(rows)),
        num_cpus=cpus,
        num_gpus=gpus,
    )
    for row in embedded.iter_rows():
        shard = int(row["shard"])
        vectors = np.frombuffer(row["vectors"], np.float32).reshape(int(row["rows"]), -1)
        if len(vectors) != len(jobs[shard]):
            raise RuntimeError(
                f"shard {shard}: {len(vectors)} vectors for {len(jobs[shard])} texts"
            )
        yield shard, vectors.copy()


def embed_pending(pending: dict, chunks, shards, config, plan: dict, progress):
    """Yield ``(shard, vectors)`` for the build's ``pending`` shards, ``{shard: (vectors
    from other sources or None, positions still to embed)}``, each completed on Ray."""
    jobs = {i: [chunks[shards[i][j]].text for j in todo] for i, (_, todo) in pending.items()}
    left = dict(pending)
    for i, fresh in embed_shards(
        jobs, config.embedder, plan, config.batch_size, config.ray, config.show_progress
    ):
        vectors, todo = left.pop(i)
        if vectors is None:
            vectors = np.empty((len(shards[i]), fresh.shape[1]), np.float32)
        vectors[todo] = fresh
        progress(len(todo))
        yield i, vectors
    if left:
        raise RuntimeError(
            f"Ray returned no vectors for shards {sorted(left)}; run the build again: it "
            "resumes with them"
        )
