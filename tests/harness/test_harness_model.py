"""The siftlm harness model on a tiny model: the three request types, one adaptation
per context, the base model restored after every request, per-request facts."""

from __future__ import annotations

import pytest

pytest.importorskip("lm_eval")  # the optional extra siftlm[eval]

import torch  # noqa: E402
from lm_eval.api.instance import Instance  # noqa: E402

from siftlm.evaluation.bpb import continuation_logprobs, encode  # noqa: E402
from siftlm.harness.model import RollingLogLikelihood, SiftLM  # noqa: E402
from siftlm.training import TestTimeTrainer, TTTConfig  # noqa: E402

TTT = {"method": "sift", "n": 3, "k": 6, "lambda_": 0.1, "lr": 1e-3, "variance_gate": None}


def request(kind: str, args: tuple, idx: int = 0, doc_id: int = 0, doc=None) -> Instance:
    return Instance(kind, doc or {}, args, idx, ("task", doc_id, 1))


def state(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_restored(model, before: dict[str, torch.Tensor]) -> None:
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert not changed, f"not restored: {changed}"
    assert all(p.grad is None for p in model.parameters())


@pytest.fixture()
def lm(model, tokenizer, memory):
    return SiftLM(
        pretrained=model, tokenizer=tokenizer, store=memory, device="cpu", progress=False, **TTT
    )


def count_adaptations(lm) -> list[str]:
    """Wraps ``lm.trainer.adapt`` to record the prompt of every adaptation."""
    seen, adapt = [], lm.trainer.adapt

    def counting(prompt, **kwargs):
        seen.append(prompt)
        return adapt(prompt, **kwargs)

    lm.trainer.adapt = counting
    return seen


CONTEXTS = ["Definition: the integral of x squared\nWord:", "Definition: the court held\nWord:"]
CHOICES = [" prime", " appeal", " contract"]


def test_loglikelihood_adapts_once_per_context(lm, model, tokenizer):
    requests = [
        request("loglikelihood", (CONTEXTS[i % 2], CHOICES[i // 2]), idx=i, doc_id=i % 2)
        for i in range(6)
    ]  # contexts interleaved
    seen = count_adaptations(lm)
    before = state(model)
    results = lm.loglikelihood(requests)
    assert seen == CONTEXTS  # once each, in order of first appearance
    assert_restored(model, before)
    # the reference: the model adapted to the context, one independent pass per choice
    for context in CONTEXTS:
        with lm.trainer.adapt(context) as adaptation:
            assert adaptation.steps == TTT["n"]
            for req, (logprob, greedy) in zip(requests, results, strict=True):
                if req.args[0] != context:
                    continue
                ctx, cont = encode(tokenizer, context), encode(tokenizer, req.args[1])
                assert encode(tokenizer, context + req.args[1]) == ctx + cont
                expected = continuation_logprobs(model, ctx + cont, len(cont))
                assert logprob == pytest.approx(expected.double().sum().item(), abs=1e-5)
                assert isinstance(greedy, bool)
    facts = lm.facts[("task", 0, 0)]
    assert facts["steps"] == TTT["n"] and facts["continuations"] == 3
    assert len(facts["selected_ids"]) == TTT["n"]
    assert facts["posterior_variance"] <= facts["prior_variance"]


def test_loglikelihood_base_and_empty_context(model, tokenizer):
    lm = SiftLM(pretrained=model, tokenizer=tokenizer, method="base", progress=False)
    requests = [
        request("loglikelihood", ("", " prime number"), idx=0),
        request("loglikelihood", ("Let x be ", "a real number"), idx=1),
    ]
    results = lm.loglikelihood(requests)
    prefix = [tokenizer.eos_token_id]
    cont = encode(tokenizer, " prime number")
    expected = continuation_logprobs(model, prefix + cont, len(cont)).double().sum().item()
    assert results[0][0] == pytest.approx(expected, abs=1e-5)
    # the context's trailing space moves to the continuation, as in the harness
    ctx = encode(tokenizer, "Let x be")
    whole = encode(tokenizer, "Let x be a real number")
    expected = continuation_logprobs(model, whole, len(whole) - len(ctx)).double().sum().item()
    assert results[1][0] == pytest.approx(expected, abs=1e-5)


def test_batched_continuations_equal_one_at_a_time(model, tokenizer, memory):
    requests = [request("loglikelihood", (CONTEXTS[0], c), idx=i) for i, c in enumerate(CHOICES)]
    scores = {}
    for batch_size in (1, "auto"):
        lm = SiftLM(
            pretrained=model,
            tokenizer=tokenizer,
            store=memory,
            progress=False,
            batch_size=batch_size,
            **TTT,
        )
        scores[batch_size] = lm.loglikelihood(requests)
    for (a, ga), (b, gb) in zip(scores[1], scores["auto"], strict=True):
        assert a == pytest.approx(b, abs=1e-5) and ga == gb


def test_rolling_is_evaluate(lm, model, tokenizer, memory):
    text = "\n".join(f"the integral of x squared is {i} é." for i in range(20))
    doc = {"id": "math/000001", "domain": "math", "text": text}
    before = state(model)
    (result,) = lm.loglikelihood_rolling([request("loglikelihood_rolling", (text,), doc=doc)])
    assert_restored(model, before)
    reference = TestTimeTrainer(model, tokenizer, memory, TTTConfig(**TTT)).evaluate(text)
    assert isinstance(result, RollingLogLikelihood)
    assert float(result) == -reference.nll_nats
    assert result.n_bytes == len(text.encode("utf-8"))
    assert lm.facts[("task", 0, 0)]["steps"] == TTT["n"]


def test_generate_until_cuts_at_stop(lm, model):
    requests = [
        request(
            "generate_until",
            ("Let x be a real number", {"until": ["\n"], "max_gen_toks": 8}),
            idx=0,
        ),
        request("generate_until", ("The court held", {"max_gen_toks": 5}), idx=1),
    ]
    before = state(model)
    texts = lm.generate_until(requests)
    assert_restored(model, before)
    assert all(isinstance(t, str) for t in texts) and "\n" not in texts[0]
    expected = lm.trainer.generate("The court held", max_new_tokens=5).text
    assert texts[1] == expected.split("<|endoftext|>")[0]
    assert lm.facts[("task", 0, 1)]["steps"] == TTT["n"]


def test_context_mode_scores_with_the_selection_in_front(model, tokenizer, memory):
    lm = SiftLM(
        pretrained=model,
        tokenizer=tokenizer,
        store=memory,
        progress=False,
        method="context",
        n=2,
        k=6,
    )
    base = SiftLM(pretrained=model, tokenizer=tokenizer, method="base", progress=False)
    req = [request("loglikelihood", (CONTEXTS[0], CHOICES[0]))]
    assert lm.loglikelihood(req)[0][0] != base.loglikelihood(req)[0][0]
    assert lm.facts[("task", 0, 0)]["in_context"] is True


def test_held_out_protocols_are_for_documents_only(lm):
    """``exclude`` names a document: multiple choice and generation refuse it."""
    import dataclasses

    fields = {spec.name: getattr(lm.config, spec.name) for spec in dataclasses.fields(lm.config)}
    lm.config = type("Config", (), {**fields, "exclude": "same-domain"})()
    with pytest.raises(ValueError, match="exclude='same-domain' applies to loglikelihood_roll"):
        lm.loglikelihood([request("loglikelihood", (CONTEXTS[0], CHOICES[0]))])
    with pytest.raises(ValueError, match="not to generate_until requests"):
        lm.generate_until([request("generate_until", ("The court held", {}))])
