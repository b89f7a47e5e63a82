"""The datastore: ingest a corpus, chunk it by the LM's tokenizer, embed, index, persist, search.

    from siftlm.datastore import BuildConfig, Datastore
    store = Datastore.build("minipile", "stores/minipile-all-MiniLM-L6-v2", BuildConfig())
    result = store.search(store.embed("a prompt"), k=5)

See :mod:`siftlm.datastore.config` for the build options, :mod:`siftlm.datastore.build`
for the build (resumable, crash-safe), :mod:`siftlm.datastore.layout` for the on-disk
layout and :mod:`siftlm.datastore.store` for searching (and the rule for single inputs).
"""

from siftlm.datastore.config import BuildConfig
from siftlm.datastore.embedders import DEFAULT_EMBEDDER, Embedder, load_embedder
from siftlm.datastore.store import Datastore, Manifest, SearchResult, StoreError

__all__ = [
    "DEFAULT_EMBEDDER",
    "BuildConfig",
    "Datastore",
    "Embedder",
    "Manifest",
    "SearchResult",
    "StoreError",
    "load_embedder",
]
