"""``siftlm serve``'s arguments, its app without a socket, and what siftlm imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from siftlm.cli import build_parser
from siftlm.serve.cli import build_app
from siftlm.training import TTTConfig

HOUSE_SMALL = Path(__file__).resolve().parents[2] / "models" / "house-small"


def test_siftlm_and_its_cli_do_not_import_the_server_stack():
    code = (
        "import sys, siftlm, siftlm.cli; siftlm.cli.build_parser(); "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'prometheus_client') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_defaults_bind_loopback_without_a_key():
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.api_key is None
    assert (args.method, args.long_prompts) == ("sift", "truncate")
    assert (args.n, args.k, args.lr) == (TTTConfig.n, TTTConfig.k, TTTConfig.lr)


@pytest.mark.skipif(not HOUSE_SMALL.exists(), reason="house-small is not in this checkout")
def test_the_app_of_the_command_answers_without_a_socket(monkeypatch):
    monkeypatch.setenv("SIFTLM_API_KEY", "from-env")
    args = build_parser().parse_args(
        ["serve", "--model", str(HOUSE_SMALL), "--store", "none", "--method", "base"]
    )
    app, settings = build_app(args)
    assert settings.model_id == "house-small" and settings.api_key == "from-env"
    headers = {"Authorization": "Bearer from-env"}
    with TestClient(app) as client:
        body = {"model": "house-small", "prompt": "The court held that", "max_tokens": 5}
        response = client.post("/v1/completions", json=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["ttft"]["steps"] == 0
        body["ttft"] = {"method": "sift"}
        response = client.post("/v1/completions", json=body, headers=headers)
        assert response.status_code == 400 and response.json()["error"]["param"] == "ttft.method"
