"""Tiny tokenizer, memory, model and corpus for the harness backend's tests (CPU, s)."""

from __future__ import annotations

import pytest

from siftlm.testing import single_thread, tiny_gpt2, tiny_memory, tiny_tokenizer, topic_texts

PHRASES = {
    "math": ["Let x be a real number such that", "the integral of x squared is", "prime"],
    "legal": ["The court held that the contract", "the defendant shall pay damages", "appeal"],
}
MEMORY_TEXTS, MEMORY_DOMAINS = topic_texts(PHRASES)


def corpus_documents() -> list[dict[str, str]]:
    """Two test documents per domain, longer than the 64-token window of the model."""
    documents = []
    for domain, phrases in PHRASES.items():
        for j in range(2):
            text = "\n".join(f"{phrases[(i + j) % 3]} {i} é." for i in range(12 + 5 * j))
            documents.append(
                {
                    "id": f"{domain}/{j:06d}",
                    "domain": domain,
                    "source": "test 1",
                    "license": "MIT",
                    "text": text,
                }
            )
    return documents


@pytest.fixture(autouse=True)
def one_thread():
    with single_thread():
        yield


@pytest.fixture(scope="session")
def tokenizer():
    texts = MEMORY_TEXTS + [d["text"] for d in corpus_documents()]
    return tiny_tokenizer(texts + ["Definition: a word. Word: apple pear"])


@pytest.fixture()
def memory():
    doc_ids = [f"{domain}/m{i:03d}" for i, domain in enumerate(MEMORY_DOMAINS)]
    return tiny_memory(MEMORY_TEXTS, MEMORY_DOMAINS, doc_ids=doc_ids)


@pytest.fixture()
def model(tokenizer):
    return tiny_gpt2(tokenizer, n_positions=64, seed=0).eval()


@pytest.fixture()
def corpus_dir(tmp_path, monkeypatch):
    """A corpus folder with test.parquet of ``corpus_documents()``, as SIFTLM_CORPUS_DIR."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "corpus"
    folder.mkdir()
    rows = corpus_documents()
    table = pa.table({key: [row[key] for row in rows] for key in rows[0]})
    pq.write_table(table, folder / "test.parquet")
    monkeypatch.setenv("SIFTLM_CORPUS_DIR", str(folder))
    return folder
