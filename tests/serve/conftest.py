"""Live servers on 127.0.0.1 (a free port) over tiny random models, and openai clients."""

from __future__ import annotations

import importlib.util

import pytest
from serve_kit import CONFIG, DOMAINS, KEY, MODEL, PROMPTS, TEXTS, LiveServer

from siftlm.testing import tiny_gpt2, tiny_memory, tiny_tokenizer
from siftlm.training import TestTimeTrainer, TTTConfig

# Without the 'serve' extra these tests are not collected.
SERVE_EXTRA = ("fastapi", "uvicorn", "prometheus_client", "openai", "httpx")
collect_ignore_glob = [] if all(importlib.util.find_spec(m) for m in SERVE_EXTRA) else ["test_*"]


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer(TEXTS + PROMPTS)


@pytest.fixture(scope="session")
def memory():
    return tiny_memory(TEXTS, DOMAINS, tokenizer=None)


@pytest.fixture()
def make_trainer(tokenizer, memory):
    """A trainer over a fresh tiny GPT-2 (the same weights every call)."""

    def make(config: TTTConfig = CONFIG) -> TestTimeTrainer:
        return TestTimeTrainer(
            tiny_gpt2(tokenizer, n_positions=96, seed=0), tokenizer, memory, config
        )

    return make


@pytest.fixture()
def start_server(make_trainer):
    """``start_server(config=CONFIG, **settings)`` -> a running ``LiveServer`` (stopped
    after the test); engine options ``max_queue`` and ``long_prompts`` go to the engine."""
    from siftlm.serve.app import Settings, create_app
    from siftlm.serve.engine import Engine

    servers: list[LiveServer] = []

    def start(config: TTTConfig = CONFIG, *, max_queue=8, long_prompts="truncate", **settings):
        engine = Engine(make_trainer(config), max_queue=max_queue, long_prompts=long_prompts)
        settings = {"model_id": MODEL, "api_key": KEY, "max_tokens": 8, **settings}
        server = LiveServer(create_app(engine, Settings(**settings)))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture()
def server(start_server) -> LiveServer:
    return start_server()


@pytest.fixture()
def client(server):
    return server.client()
