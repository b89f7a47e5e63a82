"""``siftlm serve``: an OpenAI-compatible HTTP server that adapts the model to every request.

Needs the optional extra ``siftlm[serve]`` (FastAPI, uvicorn, prometheus-client); nothing
else in siftlm imports this package. ``create_app(engine, settings)`` (``siftlm.serve.app``)
builds the ASGI app over an ``Engine`` (``siftlm.serve.engine``); ``siftlm.serve.cli``
is the command.
"""
