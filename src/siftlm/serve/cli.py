"""``siftlm serve``: the OpenAI-compatible server on uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

API_KEY_VARIABLE = "SIFTLM_API_KEY"


def _require_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise ValueError(
            f"siftlm serve needs the 'serve' extra ({error.name} is missing): "
            "pip install 'siftlm[serve]'"
        ) from None


def build_app(args: argparse.Namespace):
    """The app of the parsed arguments: model, datastore, trainer, engine."""
    from siftlm.bench.runner import open_store
    from siftlm.models import load_model
    from siftlm.serve.app import Settings, create_app
    from siftlm.serve.engine import Engine
    from siftlm.training import TestTimeTrainer, TTTConfig

    config = TTTConfig.from_name(
        args.method, n=args.n, k=args.k, lambda_=args.lambda_, lr=args.lr, seed=args.seed,
        finetune=args.finetune, variance_gate=args.variance_gate,
    )  # fmt: skip
    model, tokenizer = load_model(args.model)
    store = None if args.store == "none" else open_store(args.store)
    trainer = TestTimeTrainer(model, tokenizer, store, config)
    engine = Engine(trainer, max_queue=args.max_queue, long_prompts=args.long_prompts)
    settings = Settings(
        model_id=args.served_model_name or Path(str(args.model).rstrip("/")).name,
        api_key=args.api_key or os.environ.get(API_KEY_VARIABLE) or None,
        timeout=args.timeout,
        max_tokens=args.max_tokens,
        max_n=args.max_n,
    )
    return create_app(engine, settings), settings


def _serve(args: argparse.Namespace) -> int:
    _require_extra()
    import torch
    import uvicorn

    if args.threads:
        torch.set_num_threads(args.threads)
    if not ipaddress.ip_address(_resolve(args.host)).is_loopback:
        print(
            f"warning: listening on {args.host}, reachable from other machines"
            + ("" if args.api_key or os.environ.get(API_KEY_VARIABLE) else ", without an API key"),
            file=sys.stderr,
        )
    app, settings = build_app(args)
    print(f"serving {settings.model_id!r} on http://{args.host}:{args.port}/v1", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _resolve(host: str) -> str:
    import socket

    return "127.0.0.1" if host == "localhost" else socket.gethostbyname(host)


def register(subparsers) -> None:
    from siftlm.training.config import TTTConfig

    serve = subparsers.add_parser(
        "serve",
        help="an OpenAI-compatible server that adapts the model to every request",
        description="POST /v1/completions and /v1/chat/completions (stream: true for "
        "server-sent events), GET /v1/models, /health, /metrics. Every request is answered by "
        "the model fine-tuned on data selected for it (the 'ttft' field of a request sets "
        "method, n, k, lambda, alpha, lr, mode), then restored. Needs siftlm[serve].",
    )
    serve.add_argument("--model", default="house-small", help="model name or folder")
    serve.add_argument(
        "--store", default=None, help="datastore folder (default: embedded; 'none': base only)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--served-model-name", default=None, help="default: the model's name")
    serve.add_argument(
        "--api-key", default=None, help=f"required key (default: ${API_KEY_VARIABLE}; none: open)"
    )
    serve.add_argument("--method", default="sift", help="default method of requests")
    serve.add_argument("-n", type=int, default=TTTConfig.n, help="default sequences to train on")
    serve.add_argument("-k", type=int, default=TTTConfig.k, help="default candidates to retrieve")
    serve.add_argument("--lambda", dest="lambda_", type=float, default=TTTConfig.lambda_)
    serve.add_argument("--lr", type=float, default=TTTConfig.lr)
    serve.add_argument(
        "--variance-gate",
        type=lambda value: None if value == "none" else float(value),
        default=TTTConfig.variance_gate,
        help="train only if the selection's posterior variance <= gate x prior ('none': always)",
    )
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--finetune", choices=("full", "lora"), default="full")
    serve.add_argument("--max-queue", type=int, default=16, help="requests queued at most")
    serve.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    serve.add_argument("--max-tokens", type=int, default=64, help="default max_tokens")
    serve.add_argument("--max-n", type=int, default=256, help="largest n a request may ask")
    serve.add_argument(
        "--long-prompts",
        choices=("truncate", "refuse"),
        default="truncate",
        help="a prompt longer than the context: keep its end (with a warning) or answer 400",
    )
    serve.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)
