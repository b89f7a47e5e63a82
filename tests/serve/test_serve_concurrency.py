"""Concurrent requests, the queue limit, disconnects and timeouts against a live server."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
from serve_kit import CONFIG, KEY, MODEL, PROMPTS

import siftlm.training.loop as loop_module
from siftlm.training.exclusive import adaptation_lock

REQUESTS = [
    {"prompt": prompt, "max_tokens": 6, "temperature": 1.0, "seed": seed, "extra_body": extra}
    for seed, (prompt, extra) in enumerate(
        [
            (PROMPTS[0], {}),
            (PROMPTS[1], {"ttft": {"method": "base"}}),
            (PROMPTS[2], {"ttft": {"method": "nn", "n": 3}}),
            (PROMPTS[1], {"ttft": {"n": 6, "lr": 3e-3}}),
            (PROMPTS[0], {"ttft": {"mode": "context"}}),
            (PROMPTS[2], {}),
        ]
    )
]


def _outcome(response) -> tuple:
    ttft = response.model_extra["ttft"]
    return response.choices[0].text, ttft["steps"], [item["id"] for item in ttft["memory"]]


def _wait_for(condition, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_concurrent_requests_equal_sequential_ones(server, client):
    # sampled at temperature 1: any change of the adapted weights changes the text
    sequential = [_outcome(client.completions.create(model=MODEL, **r)) for r in REQUESTS]
    with ThreadPoolExecutor(len(REQUESTS)) as pool:
        responses = pool.map(lambda r: client.completions.create(model=MODEL, **r), REQUESTS)
        concurrent = [_outcome(response) for response in responses]
    assert concurrent == sequential
    assert len({text for text, _, _ in sequential}) > 1


def test_a_full_queue_answers_429_with_retry_after(start_server):
    server = start_server(max_queue=2)
    client = server.client()
    with ThreadPoolExecutor(2) as pool:
        with adaptation_lock():  # the worker blocks in its first adaptation
            queued = [
                pool.submit(client.completions.create, model=MODEL, prompt=p, max_tokens=2)
                for p in PROMPTS[:2]
            ]
            _wait_for(lambda: server.engine.pending == 2)
            with pytest.raises(openai.RateLimitError) as raised:
                client.completions.create(model=MODEL, prompt=PROMPTS[2], max_tokens=2)
            assert raised.value.response.headers["Retry-After"] == "1"
            assert raised.value.body["code"] == "queue_full"
        assert all(future.result().choices for future in queued)
    assert server.metric("siftlm_requests_total", endpoint="/v1/completions", status="429") == 1


@pytest.fixture()
def paused_training(monkeypatch):
    """The first gradient step of the test signals ``started``, then waits for
    ``resume`` (which the test sets once the client has gone)."""
    started, resume = threading.Event(), threading.Event()
    original = loop_module.train_step
    steps = []

    def pausing(*args, **kwargs):
        steps.append(1)
        loss = original(*args, **kwargs)
        if not started.is_set():
            started.set()
            resume.wait(timeout=120)
        return loss

    monkeypatch.setattr(loop_module, "train_step", pausing)
    yield started, resume, steps
    resume.set()


def _post_and_close(server, body: dict, started: threading.Event) -> None:
    """POST ``body`` on a raw connection and close it once training has started."""
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as connection:
        connection.sendall(head.encode() + payload)
        assert started.wait(timeout=120)


@pytest.mark.parametrize("stream", [False, True])
def test_a_disconnect_mid_adaptation_cancels_and_restores(
    stream, start_server, paused_training, state_of_model
):
    started, resume, steps = paused_training
    server = start_server()
    before = state_of_model(server.engine.trainer.model)
    body = {"model": MODEL, "prompt": PROMPTS[0], "max_tokens": 6, "stream": stream}
    _post_and_close(server, {**body, "ttft": {"n": 8}}, started)
    _wait_for(lambda: server.metric("siftlm_cancelled_total", reason="disconnect") == 1)
    resume.set()
    _wait_for(lambda: server.engine.pending == 0)
    assert len(steps) == 1  # stopped after the step it was in, of 8
    assert state_of_model(server.engine.trainer.model) == before
    # the request after it gets what a fresh server answers
    request = {"model": MODEL, "prompt": PROMPTS[1], "max_tokens": 6, "temperature": 1.0}
    after = server.client().completions.create(**request)
    fresh = start_server().client().completions.create(**request)
    assert _outcome(after) == _outcome(fresh)
    assert len(steps) == 1 + 2 * CONFIG.n
    assert server.metric("siftlm_adaptation_steps_total") == CONFIG.n


def test_a_request_past_the_timeout_gets_504_and_is_cancelled(
    start_server, paused_training, state_of_model
):
    steps = paused_training[2]
    server = start_server(timeout=0.5)
    before = state_of_model(server.engine.trainer.model)
    with adaptation_lock():  # the request cannot start before its time runs out
        with pytest.raises(openai.InternalServerError) as raised:
            server.client().completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=2)
    assert raised.value.status_code == 504 and raised.value.body["code"] == "timeout"
    _wait_for(lambda: server.engine.pending == 0)
    assert steps == []  # cancelled before its first step
    assert state_of_model(server.engine.trainer.model) == before
    assert server.metric("siftlm_cancelled_total", reason="timeout") == 1
    assert server.metric("siftlm_adaptations_total", method="sift") == 0


@pytest.fixture()
def state_of_model():
    """A comparable copy of every parameter and buffer (as bytes)."""

    def state(model) -> dict:
        tensors = dict(model.named_parameters())
        tensors.update({f"buffer:{n}": b for n, b in model.named_buffers()})
        return {name: t.detach().cpu().numpy().tobytes() for name, t in tensors.items()}

    return state
