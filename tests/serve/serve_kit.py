"""What the serve tests share: the tiny corpus, prompts, settings and ``LiveServer``."""

from __future__ import annotations

import socket
import threading
import time

from siftlm import testing
from siftlm.testing import topic_texts
from siftlm.training import TTTConfig

TEXTS, DOMAINS = topic_texts()  # the tiny corpus of the training tests
PROMPTS = list(testing.PROMPTS)
MODEL = "tiny"
KEY = "test-key"
CONFIG = TTTConfig(n=4, k=12, lr=1e-3, variance_gate=None)  # always trains


class LiveServer:
    """uvicorn serving ``app`` in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app) -> None:
        import uvicorn

        self.app = app
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    @property
    def engine(self):
        return self.app.state.engine

    def metric(self, name: str, **labels) -> float:
        value = self.app.state.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def client(self, api_key: str = KEY, **kwargs):
        import openai

        return openai.OpenAI(
            base_url=self.url + "/v1", api_key=api_key, max_retries=0, timeout=300, **kwargs
        )

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
