"""Concurrent use of the engine: serialised, so every thread gets its sequential result."""

from __future__ import annotations

import threading

import pytest

from siftlm.training import TestTimeTrainer, TTTConfig
from siftlm.training.exclusive import adaptation_lock


def _run_in_threads(calls) -> list:
    """Start every call at once (one thread each); their results in call order."""
    results: list = [None] * len(calls)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(calls))

    def work(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as error:  # reported in the test thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_threads_on_one_trainer_get_the_sequential_results(
    finetune, make_model, tokenizer, memory, prompts, state_of, assert_untouched
):
    model = make_model()
    state = state_of(model)
    trainer = TestTimeTrainer(
        model, tokenizer, memory, TTTConfig(n=6, k=12, finetune=finetune, variance_gate=None)
    )
    texts = prompts * 2
    sequential = [trainer.evaluate(text).nll_nats for text in texts]
    concurrent = _run_in_threads([lambda t=text: trainer.evaluate(t).nll_nats for text in texts])
    assert concurrent == sequential
    assert_untouched(model, state)


def test_two_trainers_on_one_model_are_serialised(make_model, tokenizer, memory, prompts):
    model = make_model()
    sift = TestTimeTrainer(model, tokenizer, memory, TTTConfig(n=6, k=12, variance_gate=None))
    base = TestTimeTrainer(model, tokenizer, None, TTTConfig(method="base"))
    calls = [lambda p=p: sift.generate(p, max_new_tokens=5).text for p in prompts]
    calls += [lambda p=p: base.generate(p, max_new_tokens=5).text for p in prompts]
    sequential = [call() for call in calls]
    assert _run_in_threads(calls) == sequential


def test_a_nested_adaptation_in_one_thread_is_refused(make_model, tokenizer, memory, prompts):
    trainer = TestTimeTrainer(
        make_model(), tokenizer, memory, TTTConfig(n=2, k=6, variance_gate=None)
    )
    with trainer.adapt(prompts[0]):
        with pytest.raises(RuntimeError, match="already adapting"):
            trainer.generate(prompts[1], max_new_tokens=2)
    assert trainer.generate(prompts[1], max_new_tokens=2).steps == 2  # lock freed


def test_other_threads_wait_while_the_lock_is_held(make_model, tokenizer, memory, prompts):
    trainer = TestTimeTrainer(
        make_model(), tokenizer, memory, TTTConfig(n=2, k=6, variance_gate=None)
    )
    done = threading.Event()
    thread = threading.Thread(target=lambda: (trainer.evaluate(prompts[0]), done.set()))
    with adaptation_lock():
        thread.start()
        assert not done.wait(0.3)  # blocked on the lock
    thread.join(timeout=60)
    assert done.is_set()


def test_raising_from_on_step_stops_training_and_restores(
    make_model, tokenizer, memory, prompts, state_of, assert_untouched
):
    model = make_model()
    state = state_of(model)
    trainer = TestTimeTrainer(model, tokenizer, memory, TTTConfig(n=6, k=12, variance_gate=None))

    def stop_after_two(step: int) -> None:
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.generate(prompts[0], max_new_tokens=3, on_step=stop_after_two)
    assert_untouched(model, state)
