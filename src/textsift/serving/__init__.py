"""Serving: the HTTP prediction server (FastAPI + uvicorn), its micro-batcher, and a Ray Serve deployment.

Everything here runs the :class:`~textsift.inference.Predictor` (never training code)::

    textsift serve runs/trec/model --port 8000          # or: textsift serve runs/trec/model --ray --replicas 2
    curl -s localhost:8000/predict -d '{"texts": ["Who wrote Hamlet ?"]}'

:func:`~textsift.serving.app.create_app` builds the ASGI app for embedding elsewhere.
"""

from textsift.serving.app import ServeSettings, create_app
from textsift.serving.batcher import MicroBatcher, QueueFull

__all__ = ["MicroBatcher", "QueueFull", "ServeSettings", "create_app"]
