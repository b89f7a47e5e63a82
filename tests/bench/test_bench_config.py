"""BenchConfig: validation and the derived per-method settings."""

from __future__ import annotations

import pytest

from siftlm.bench import BenchConfig


def test_sparse_learning_curves_keep_the_first_ten_steps():
    config = BenchConfig(n=50, curve_every=5, methods=("base", "nn", "sift"))
    assert config.curve_steps("sift") == [*range(11), 15, 20, 25, 30, 35, 40, 45, 50]
    assert config.curve_steps("base") is False
    assert BenchConfig(methods=("nn",)).curve_steps("nn") is True
    with pytest.raises(ValueError, match="curve_every must be >= 1"):
        BenchConfig(curve_every=0)


def test_documents_come_in_rounds_over_the_domains():
    from siftlm.bench import pick_documents

    picked = pick_documents(BenchConfig(split="validation", docs_per_domain=2))
    domains = [d.domain for d in picked]
    n_domains = len(set(domains))
    assert len(picked) == 2 * n_domains
    assert domains[:n_domains] == domains[n_domains:]  # one of each, then one of each again
    assert len(set(domains[:n_domains])) == n_domains
    assert len({d.id for d in picked}) == len(picked)
    only = pick_documents(BenchConfig(split="validation", domains=(domains[0],)))
    assert {d.domain for d in only} == {domains[0]} and len(only) > 2


def test_every_worker_covers_every_domain():
    from siftlm.bench.runner import shard
    from siftlm.data import Document

    documents = [
        Document(id=f"{d}{j}", domain=d, source="s", license="CC0", text="x")
        for j in range(3)
        for d in "abcd"
    ]
    shares = [shard(documents, rank, 2) for rank in (0, 1)]
    assert sorted(d.id for s in shares for d in s) == sorted(d.id for d in documents)
    assert all({d.domain for d in s} == set("abcd") for s in shares)
    assert [d.id for d in shares[0]] == ["a0", "c0", "b1", "d1", "a2", "c2"]
    assert shard(documents, 0, 1) == documents


def test_variance_lr_comes_from_the_command_line_and_resumes(tmp_path):
    import argparse
    import json

    from siftlm.bench.config import add_arguments, from_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--variance-lr", "0.2:3e-4", "0.3:1e-4", "--methods", "sift"])
    config = from_arguments(args)
    assert config.ttt_config("sift").variance_lr == ((0.2, 3e-4), (0.3, 1e-4))
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps(config.to_dict()))
    config.check_resumable(saved)  # the same bands, as saved: resumable
    other = BenchConfig(methods=("sift",), variance_lr=("0.2:3e-4",))
    with pytest.raises(ValueError, match="variance_lr"):
        other.check_resumable(saved)
    with pytest.raises(ValueError, match="variance_lr"):
        BenchConfig(variance_lr=("0.3:1e-4", "0.2:3e-4"))


def test_skip_docs_gives_the_next_documents_of_every_domain():
    from siftlm.bench import pick_documents

    first = pick_documents(BenchConfig(split="validation", docs_per_domain=4))
    later = pick_documents(BenchConfig(split="validation", docs_per_domain=2, skip_docs=2))
    assert [d.id for d in later] == [d.id for d in first[len(first) // 2 :]]
    with pytest.raises(ValueError, match="skip_docs"):
        pick_documents(BenchConfig(split="validation", skip_docs=10_000))
    with pytest.raises(ValueError, match="skip_docs"):
        BenchConfig(skip_docs=-1)


def test_curve_methods_none_records_no_curves():
    import argparse

    from siftlm.bench.config import add_arguments, from_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--curve-methods", "none", "--methods", "nn", "sift"])
    config = from_arguments(args)
    assert config.curve_methods == ()
    assert config.curve_steps("sift") is False and config.curve_steps("nn") is False
    assert BenchConfig(curve_methods=("None",)).curve_methods == ()
    assert BenchConfig(curve_methods=("sift",)).curve_methods == ("sift",)


def test_duplicate_copies_from_the_command_line_and_bad_values():
    import argparse

    from siftlm.bench.config import add_arguments, from_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--duplicates", "1", "--duplicate-copies", "4", "--methods", "nn"])
    assert from_arguments(args).duplicate_copies == 4
    with pytest.raises(ValueError, match="duplicate_copies must be >= 1"):
        BenchConfig(duplicates=1.0, duplicate_copies=0)
    with pytest.raises(ValueError, match="exact copies only"):
        BenchConfig(duplicates=1.0, duplicate_copies=2, duplicate_kind="near")
