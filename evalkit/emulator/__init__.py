"""The embedded local router: a semantic router over the same ``router.json`` as DigitalOcean's.

``create_app`` builds the ASGI app (inference plane); ``LocalRouter`` runs it on a free loopback
port in a background thread, for ``evalkit run --target local`` and for tests.
"""

from evalkit.emulator.classifier import Decision, EmbeddingClassifier, load_encoder
from evalkit.emulator.server import DEFAULT_THRESHOLD, LocalRouter, create_app

__all__ = ["DEFAULT_THRESHOLD", "Decision", "EmbeddingClassifier", "LocalRouter", "create_app", "load_encoder"]
