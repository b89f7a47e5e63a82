"""Pretraining: schedule, data order, and resume after SIGKILL ends at the same weights."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from siftlm.models.pretrain import (
    CHECKPOINT,
    BlockSampler,
    PretrainConfig,
    check_same_run,
    lr_at,
    progress_of,
)


def test_schedule_warms_up_then_decays_to_the_floor():
    config = PretrainConfig(out="x", max_tokens=1000, lr=1e-3, min_lr_ratio=0.1, warmup_steps=10)
    assert lr_at(0.0, 0, config) == pytest.approx(1e-4)
    assert lr_at(0.0, 9, config) == pytest.approx(1e-3)
    assert lr_at(0.5, 100, config) == pytest.approx(0.55e-3)
    assert lr_at(1.0, 100, config) == pytest.approx(1e-4)


def test_deadline_makes_a_slow_run_decay_on_time():
    config = PretrainConfig(out="x", max_tokens=10**9, deadline=1100.0)
    # few tokens but most of the time gone: the clock sets the progress
    assert progress_of(1000, now=1090.0, started=1000.0, config=config) == pytest.approx(0.9)
    no_budget = PretrainConfig(out="x", deadline=1100.0)
    assert progress_of(0, now=1100.0, started=1000.0, config=no_budget) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="max_tokens or a deadline"):
        PretrainConfig(out="x")


def test_batches_are_a_function_of_seed_and_step():
    stream = np.arange(1000, dtype=np.uint16)
    first = BlockSampler(stream, context=10, batch_size=4, seed=3)
    second = BlockSampler(stream, context=10, batch_size=4, seed=3)
    assert torch.equal(first.batch(30), second.batch(30))  # step 30 lies in epoch 1
    assert not torch.equal(first.batch(0), BlockSampler(stream, 10, 4, seed=4).batch(0))
    # one epoch visits every block exactly once
    epoch = torch.cat([first.batch(step) for step in range(25)])
    assert sorted(epoch[:, 0].tolist()) == list(range(0, 1000, 10))


STEPS = 240
TOKENS_PER_STEP = 4 * 32


def pretrain_command(out, tokenizer_dir, texts_dir) -> list[str]:
    return [
        sys.executable, "-m", "siftlm.models.cli", "pretrain", "--size", "tiny",
        "--tokenizer", str(tokenizer_dir), "--context", "32", "--batch-size", "4",
        "--train-file", str(texts_dir / "train.jsonl"), "--val-file", str(texts_dir / "val.jsonl"),
        "--max-tokens", str(STEPS * TOKENS_PER_STEP), "--warmup-steps", "10",
        "--checkpoint-every", "5", "--eval-every", "50", "--eval-docs", "2", "--seed", "7",
        "--out", str(out),
    ]  # fmt: skip


def run(command: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_resume_after_sigkill_ends_at_the_same_weights(tmp_path, tiny_tokenizer_dir, tiny_jsonl):
    reference = run(pretrain_command(tmp_path / "straight", tiny_tokenizer_dir, tiny_jsonl))
    assert reference.returncode == 0, reference.stderr

    out = tmp_path / "killed"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    process = subprocess.Popen(
        pretrain_command(out, tiny_tokenizer_dir, tiny_jsonl), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 240
    while not (out / CHECKPOINT).exists():
        assert process.poll() is None, "the run ended before writing a checkpoint"
        assert time.time() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    killed_at = torch.load(out / CHECKPOINT, weights_only=False)["step"]
    assert 0 < killed_at < STEPS, "the kill must land in the middle of the run"
    assert not (out / "model.safetensors").exists()

    resumed = run(pretrain_command(out, tiny_tokenizer_dir, tiny_jsonl))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {out / CHECKPOINT} at step {killed_at}" in resumed.stdout
    assert torch.load(out / CHECKPOINT, weights_only=False)["step"] == STEPS

    expected = load_file(tmp_path / "straight" / "model.safetensors")
    actual = load_file(out / "model.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    val = [line for line in resumed.stdout.splitlines() if "validation bpb" in line]
    assert val and math.isfinite(float(val[-1].split("bpb")[1].split()[0]))


def test_checkpoint_of_another_run_is_named_field_by_field():
    import dataclasses

    config = PretrainConfig(out="x", max_tokens=1000, seed=7)
    saved = dataclasses.asdict(config)
    check_same_run(saved, config)  # the same run: resumable
    check_same_run({**saved, "out": "elsewhere"}, config)  # operational fields may differ
    with pytest.raises(
        ValueError, match=r"x holds a checkpoint of a different run \(seed: 8 -> 7\)"
    ):
        check_same_run({**saved, "seed": 8}, config)


def test_resume_refuses_a_different_run(tmp_path, tiny_tokenizer_dir, tiny_jsonl):
    command = pretrain_command(tmp_path / "run", tiny_tokenizer_dir, tiny_jsonl)
    short = [*command[:-4], "--seed", "7", "--out", str(tmp_path / "run")]
    short[short.index("--max-tokens") + 1] = str(2 * TOKENS_PER_STEP)
    assert run(short).returncode == 0
    changed = [*command]
    changed[changed.index("--seed") + 1] = "8"
    result = run(changed)
    assert result.returncode != 0
    assert "different run" in result.stderr and "seed" in result.stderr
