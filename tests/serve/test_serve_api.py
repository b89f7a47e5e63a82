"""The HTTP API through the official openai client against a live server."""

from __future__ import annotations

import dataclasses

import httpx
import openai
import pytest
from serve_kit import CONFIG, KEY, MODEL, PROMPTS

from siftlm.serve.chat import SIMPLE_STOP, simple_template


def _ttft(response) -> dict:
    return response.model_extra["ttft"]


def test_a_completion_is_the_adapted_models_generation(client, make_trainer):
    response = client.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=6)
    expected = make_trainer().generate(PROMPTS[0], max_new_tokens=6)
    choice = response.choices[0]
    assert choice.text == expected.text
    assert choice.finish_reason in ("stop", "length")
    ttft = _ttft(response)
    assert ttft["method"] == "sift" and ttft["steps"] == CONFIG.n
    assert [item["id"] for item in ttft["memory"]] == [item.id for item in expected.memory]
    assert [item["domain"] for item in ttft["memory"]] == [item.domain for item in expected.memory]
    assert ttft["prior_variance"] == pytest.approx(expected.prior_variance)
    assert ttft["posterior_variance"] == pytest.approx(expected.posterior_variance)
    assert ttft["posterior_variance"] < ttft["prior_variance"]
    assert ttft["timings"]["train"] > 0
    assert response.usage.completion_tokens <= 6
    assert (
        response.usage.total_tokens == response.usage.prompt_tokens + 6
        or choice.finish_reason == "stop"
    )


def test_chat_uses_the_simple_template_and_stops_at_the_next_turn(client, make_trainer):
    messages = [
        {"role": "system", "content": "You answer in code."},
        {"role": "user", "content": PROMPTS[0]},
    ]
    response = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=6)
    prompt = simple_template([(m["role"], m["content"]) for m in messages])
    assert prompt.endswith("User: " + PROMPTS[0] + "\n\nAssistant:")
    expected = make_trainer().generate(prompt, max_new_tokens=6).text
    expected = expected.split(SIMPLE_STOP[0])[0]
    message = response.choices[0].message
    assert message.role == "assistant" and message.content == expected
    assert _ttft(response)["steps"] == CONFIG.n


@pytest.mark.parametrize("chat", [False, True])
def test_a_stream_carries_the_same_text_as_the_whole_response(client, chat):
    create = client.chat.completions.create if chat else client.completions.create
    request = (
        {"messages": [{"role": "user", "content": PROMPTS[1]}]} if chat else {"prompt": PROMPTS[1]}
    )
    request.update(model=MODEL, max_tokens=7, temperature=1.0, seed=3)
    whole = create(**request)
    chunks = list(create(**request, stream=True, stream_options={"include_usage": True}))
    if chat:
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert text == whole.choices[0].message.content
    else:
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        assert text == whole.choices[0].text
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == whole.choices[0].finish_reason
    assert finals[0].model_extra["ttft"]["memory"] == _ttft(whole)["memory"]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_ttft_options_change_the_adaptation(client):
    base = client.completions.create(
        model=MODEL, prompt=PROMPTS[2], max_tokens=4, extra_body={"ttft": {"method": "base"}}
    )
    assert _ttft(base)["steps"] == 0 and _ttft(base)["memory"] == []
    nn = client.completions.create(
        model=MODEL, prompt=PROMPTS[2], max_tokens=4,
        extra_body={"ttft": {"method": "nn", "n": 2, "k": 5, "lr": 1e-4}},
    )  # fmt: skip
    assert _ttft(nn)["steps"] == 2 and _ttft(nn)["config"]["k"] == 5
    scores = [item["score"] for item in _ttft(nn)["memory"]]
    assert scores == sorted(scores, reverse=True)  # nearest neighbours, in order
    adaptive = client.completions.create(
        model=MODEL, prompt=PROMPTS[2], max_tokens=4,
        extra_body={"ttft": {"n": 20, "alpha": 50.0, "lambda": 0.5}},
    )  # fmt: skip
    assert _ttft(adaptive)["steps"] < 20  # adaptive SIFT stopped early
    gated = client.completions.create(
        model=MODEL, prompt=PROMPTS[2], max_tokens=4, extra_body={"ttft": {"variance_gate": 1e-6}}
    )
    assert _ttft(gated)["gated"] and _ttft(gated)["steps"] == 0 and _ttft(gated)["memory"]
    assert not _ttft(nn)["gated"]


def test_per_request_trainers_equal_fresh_ones(server, make_trainer):
    config = dataclasses.replace(CONFIG, method="nn", n=3, k=6, lr=2e-3, seed=7)
    shared = server.engine.trainer_for(config)
    assert shared.model is server.engine.trainer.model  # no copy of the weights
    fresh = make_trainer(config)
    for prompt in PROMPTS:
        assert shared.evaluate(prompt).nll_nats == fresh.evaluate(prompt).nll_nats
    with pytest.raises(ValueError, match="cannot change"):
        server.engine.trainer_for(dataclasses.replace(CONFIG, finetune="lora"))


@pytest.mark.parametrize(
    ("request_fields", "param"),
    [
        ({"prompt": "   "}, "prompt"),
        ({"temperature": 5}, "temperature"),
        ({"max_tokens": 96}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 2}, "n"),
        ({"top_k": 3}, "top_k"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"ttft": {"method": "sfit"}}, "ttft.method"),
        ({"ttft": {"n": 0}}, "ttft.n"),
        ({"ttft": {"n": 1000}}, "ttft.n"),
        ({"ttft": {"k": 25}}, "ttft.k"),
        ({"ttft": {"lr": -1}}, "ttft.lr"),
        ({"ttft": {"variance_gate": 2}}, "ttft.variance_gate"),
        ({"ttft": {"finetune": "lora"}}, "ttft.finetune"),
        ({"ttft": {"n": 8, "k": 4, "distinct": True}}, "ttft"),  # the message names both
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, request_fields, param):
    with pytest.raises(openai.BadRequestError) as raised:
        client.completions.create(model=MODEL, prompt=PROMPTS[0], extra_body=request_fields)
    error = raised.value.body
    assert raised.value.status_code == 400
    assert error["param"] == param, error
    assert error["message"]


def test_malformed_json_and_unknown_model(server, client):
    response = httpx.post(
        server.url + "/v1/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and "error" in response.json()
    with pytest.raises(openai.NotFoundError) as raised:
        client.completions.create(model="gpt-4", prompt=PROMPTS[0])
    assert raised.value.body["param"] == "model"


def test_the_api_key_is_required_except_for_health(server):
    with pytest.raises(openai.AuthenticationError):
        server.client(api_key="wrong").completions.create(model=MODEL, prompt=PROMPTS[0])
    for path in ("/v1/models", "/metrics"):
        assert httpx.get(server.url + path).status_code == 401
    # an unauthenticated request learns nothing about its body's problems
    response = httpx.post(server.url + "/v1/completions", json={"prompt": 3})
    assert response.status_code == 401
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    models = server.client().models.list()
    assert [model.id for model in models.data] == [MODEL]


@pytest.mark.filterwarnings("ignore:the prompt has")
def test_long_prompts_are_cut_with_a_warning_or_refused(start_server):
    long_prompt = " ".join(PROMPTS * 12)
    cutting = start_server().client()
    response = cutting.completions.create(model=MODEL, prompt=long_prompt, max_tokens=8)
    assert "only its end was used" in response.model_extra["warnings"][0]
    assert response.usage.prompt_tokens == 96 - 8 - 1
    refusing = start_server(long_prompts="refuse").client()
    with pytest.raises(openai.BadRequestError) as raised:
        refusing.completions.create(model=MODEL, prompt=long_prompt, max_tokens=8)
    assert raised.value.body["code"] == "context_length_exceeded"
    assert refusing.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=8).choices


def test_stop_strings_cut_the_completion(client):
    free = client.completions.create(
        model=MODEL, prompt=PROMPTS[1], max_tokens=12, temperature=1, seed=1
    )
    text = free.choices[0].text
    assert len(text) > 2
    stop = text[1:3]
    cut = client.completions.create(
        model=MODEL, prompt=PROMPTS[1], max_tokens=12, temperature=1, seed=1, stop=stop
    )
    assert cut.choices[0].text == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_metrics_count_requests_steps_and_the_queue(server, client):
    client.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=2)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=0)
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    assert 'siftlm_requests_total{endpoint="/v1/completions",status="200"} 1.0' in text
    assert 'siftlm_requests_total{endpoint="/v1/completions",status="400"} 1.0' in text
    assert f"siftlm_adaptation_steps_total {float(CONFIG.n)}" in text
    assert "siftlm_queue_length 0.0" in text
    assert 'siftlm_request_seconds_count{endpoint="/v1/completions"} 2.0' in text
