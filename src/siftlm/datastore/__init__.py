"""The datastore: ingest a corpus, chunk it by the LM's tokenizer, embed, index, persist, search.

    from siftlm.datastore import Datastore
    store = Datastore.build("minipile", "stores/minipile-all-MiniLM-L6-v2")
    result = store.search(store.embed(["a prompt"]), k=5)

See :mod:`siftlm.datastore.build` for the build (resumable, crash-safe) and
:mod:`siftlm.datastore.store` for the on-disk layout.
"""

from siftlm.datastore.embedders import DEFAULT_EMBEDDER, Embedder, load_embedder
from siftlm.datastore.store import Datastore, Manifest, SearchResult, StoreError

__all__ = [
    "DEFAULT_EMBEDDER",
    "Datastore",
    "Embedder",
    "Manifest",
    "SearchResult",
    "StoreError",
    "load_embedder",
]
