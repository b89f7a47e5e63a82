"""The OpenAI-compatible HTTP API (FastAPI): ``create_app(engine, ...)``.

Endpoints: ``POST /v1/completions``, ``POST /v1/chat/completions`` (``stream: true``
gives server-sent events), ``GET /v1/models``, ``GET /health`` (never needs the key),
``GET /metrics`` (Prometheus text). Requests wait in the engine's bounded queue (full:
429 with ``Retry-After``); a request whose client disconnects, or that runs past
``timeout`` seconds (504), is cancelled and the model restored before the next one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from siftlm.serve.chat import render_chat
from siftlm.serve.engine import Completion, Engine, Job, PromptTooLong, QueueFull
from siftlm.serve.metrics import Metrics
from siftlm.serve.responses import DONE, APIError, Responder, event
from siftlm.serve.schemas import ChatRequest, CompletionRequest, FieldError
from siftlm.serve.tokens import Cancelled
from siftlm.training.config import BASE_METHOD

log = logging.getLogger("siftlm.serve")
POLL_SECONDS = 0.05  # how often a waiting request checks for its client's disconnect


@dataclasses.dataclass
class Settings:
    """Server-wide settings (no request can change them).

    ``model_id``: the name clients pass as ``model``; ``api_key``: required as
    ``Authorization: Bearer KEY`` on every endpoint but /health (None: open);
    ``timeout``: seconds per request, queueing included; ``max_tokens``: the default
    of requests that give none; ``max_n``: the most sequences a request may select;
    ``retry_after``: seconds suggested to a client refused by a full queue.
    """

    model_id: str
    api_key: str | None = None
    timeout: float = 300.0
    max_tokens: int = 64
    max_n: int = 256
    retry_after: int = 1


def create_app(engine: Engine, settings: Settings) -> FastAPI:
    """The ASGI app over ``engine``; it closes the engine when it shuts down."""

    @asynccontextmanager
    async def lifespan(_app):
        yield
        engine.close()

    app = FastAPI(title="siftlm", lifespan=lifespan, docs_url=None, redoc_url=None)
    metrics = Metrics(lambda: engine.pending)
    server = _Server(engine, settings, metrics)
    _add_error_handlers(app)
    auth = [Depends(_check_key(settings.api_key))]

    @app.get("/health")
    async def health():
        return {"status": "ok", "queue": engine.pending}

    @app.get("/v1/models", dependencies=auth)
    async def models():
        model = {"id": settings.model_id, "object": "model", "created": 0, "owned_by": "siftlm"}
        return {"object": "list", "data": [model]}

    @app.get("/metrics", dependencies=auth)
    async def metrics_text():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.post("/v1/completions", dependencies=auth)
    async def completions(body: CompletionRequest, request: Request):
        return await server.respond(request, body, body.prompt, (), chat=False)

    @app.post("/v1/chat/completions", dependencies=auth)
    async def chat(body: ChatRequest, request: Request):
        messages = [(message.role, message.text()) for message in body.messages]
        prompt, stops = render_chat(engine.trainer.tokenizer, messages)
        return await server.respond(request, body, prompt, stops, chat=True)

    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    app.state.engine = engine
    app.state.metrics = metrics
    return app


class _MetricsMiddleware:
    def __init__(self, app, metrics: Metrics) -> None:
        self.counted = metrics.asgi(app)

    async def __call__(self, scope, receive, send):
        await self.counted(scope, receive, send)


def _check_key(api_key: str | None):
    async def check(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), api_key.encode()
        ):
            raise APIError(
                401,
                "a valid API key is required: send the header 'Authorization: Bearer KEY'",
                code="invalid_api_key",
            )

    return check


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(_request, error: APIError):
        return JSONResponse(error.body, status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, error: RequestValidationError):
        first = error.errors()[0]
        location = [str(part) for part in first.get("loc", ()) if part != "body"]
        param = ".".join(location) or None
        message = f"{param}: {first['msg']}" if param else first["msg"]
        return JSONResponse(APIError(400, message, param=param).body, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_request, error: HTTPException):
        body = APIError(error.status_code, str(error.detail)).body
        return JSONResponse(body, status_code=error.status_code, headers=error.headers)


class _Server:
    """The request handling shared by both completion endpoints."""

    def __init__(self, engine: Engine, settings: Settings, metrics: Metrics) -> None:
        self.engine = engine
        self.settings = settings
        self.metrics = metrics

    def job(self, body, prompt: str, stops: tuple[str, ...]) -> Job:
        """The engine's job for a validated request; APIError for out-of-range values."""
        engine, settings = self.engine, self.settings
        if body.model != settings.model_id:
            raise APIError(
                404,
                f"model {body.model!r} is not served here; this server serves "
                f"{settings.model_id!r}",
                param="model",
                code="model_not_found",
            )
        name = (
            "max_completion_tokens"
            if getattr(body, "max_completion_tokens", None)
            else "max_tokens"
        )
        max_tokens = getattr(body, name) or min(settings.max_tokens, engine.max_length - 1)
        if max_tokens >= engine.max_length:
            raise APIError(
                400,
                f"{name}={max_tokens} leaves no room for the prompt in the model's "
                f"context of {engine.max_length} tokens",
                param=name,
            )
        config = engine.config
        try:
            if body.ttft is not None:
                config = body.ttft.apply(config, max_n=settings.max_n, store_size=engine.store_size)
        except FieldError as error:
            raise APIError(400, str(error), param=error.param) from None
        if config.method != BASE_METHOD and engine.store_size == 0:
            raise APIError(400, "this server has no datastore: only base", param="ttft.method")
        if body.seed is not None:
            config = dataclasses.replace(config, seed=body.seed)
        stop = tuple(dict.fromkeys((*body.stops(), *stops)))
        return Job(prompt, config, max_tokens, body.temperature or 0.0, body.top_p or 1.0, stop)

    def submit(self, job: Job):
        try:
            return self.engine.submit(job)
        except QueueFull as error:
            retry = str(self.settings.retry_after)
            raise APIError(
                429,
                f"the server is busy ({error}); retry after {retry} s",
                type="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": retry},
            ) from None

    async def respond(self, request: Request, body, prompt: str, stops, *, chat: bool):
        job = self.job(body, prompt, stops)
        responder = Responder(self.settings.model_id, chat)
        if body.stream:
            return self.stream(job, responder, body)
        future = self.submit(job)
        completion = await self.wait(request, job, future)
        if completion is None:  # the client went away
            return Response(status_code=499)
        return responder.whole(completion, job.config, job.max_tokens)

    async def wait(self, request: Request, job: Job, future) -> Completion | None:
        """The job's completion; None when the client disconnected (job cancelled)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout
        waiting = asyncio.wrap_future(future)
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=POLL_SECONDS)
            if waiting.done():
                break
            if await request.is_disconnected():
                self.cancel(job, future, "disconnect")
                return None
            if loop.time() >= deadline:
                self.cancel(job, future, "timeout")
                raise self.timed_out()
        return self.outcome(waiting)

    def cancel(self, job: Job, future, reason: str) -> None:
        job.cancel.set()
        future.cancel()
        self.metrics.cancelled.labels(reason).inc()

    def timed_out(self) -> APIError:
        return APIError(
            504,
            f"the request took longer than this server's timeout of {self.settings.timeout} s; "
            "it was cancelled",
            type="timeout_error",
            code="timeout",
        )

    def outcome(self, done) -> Completion:
        """The result of a finished job, or its error as an APIError."""
        try:
            completion = done.result()
        except PromptTooLong as error:
            raise APIError(
                400, str(error), param="prompt", code="context_length_exceeded"
            ) from None
        except Cancelled:
            raise self.timed_out() from None
        except ValueError as error:
            raise APIError(400, str(error)) from None
        except Exception as error:
            log.exception("request failed")
            message = f"internal error: {type(error).__name__}"
            raise APIError(500, message, type="server_error") from None
        self.metrics.adapted(completion.result.method, completion.result.steps)
        return completion

    def stream(self, job: Job, responder: Responder, body) -> StreamingResponse:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue = asyncio.Queue()
        job.on_text = lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece)
        future = self.submit(job)  # a full queue answers 429 before the stream starts
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        events = self.events(job, future, pieces, responder, include_usage)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    async def events(self, job, future, pieces, responder: Responder, include_usage: bool):
        """The stream: text as it is generated, then the finish reason and ``ttft``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.timeout
        try:
            if (first := responder.first()) is not None:
                yield first
            while (
                piece := await asyncio.wait_for(pieces.get(), deadline - loop.time())
            ) is not None:
                yield responder.chunk(piece)
            finished = asyncio.wrap_future(future)
            await asyncio.wait({finished})
            completion = self.outcome(finished)
            yield responder.last(completion, job.config, job.max_tokens)
            if include_usage:
                yield responder.usage_event(completion)
        except asyncio.TimeoutError:
            self.cancel(job, future, "timeout")
            yield event(self.timed_out().body)
        except APIError as error:
            yield event(error.body)
        finally:
            if not future.done() and not job.cancel.is_set():  # the client went away
                self.cancel(job, future, "disconnect")
        yield DONE
