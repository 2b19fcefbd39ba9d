"""The embedded local router: a stand-in for the DigitalOcean Inference Router over the same ``router.json``.

``create_app`` builds the ASGI app (inference plane under ``/v1`` and DigitalOcean's control
plane under ``/v2/gen-ai/models/routers``, on one port); ``LocalRouter`` runs it on a free
loopback port in a background thread, for ``evalkit run --target local`` and for tests.
"""

from evalkit.emulator.affinity import AffinityStore
from evalkit.emulator.arch_router import ArchRouterClassifier
from evalkit.emulator.classifier import (CLASSIFIERS, DEFAULT_THRESHOLD, Decision, EmbeddingClassifier, LlmClassifier,
                                         TfidfClassifier, encode, load_encoder, make_classifier)
from evalkit.emulator.faults import FAULT_KINDS
from evalkit.emulator.server import LocalRouter, create_app
from evalkit.emulator.state import RouterStore
from evalkit.emulator.upstream import Upstream

__all__ = ["AffinityStore", "ArchRouterClassifier", "CLASSIFIERS", "DEFAULT_THRESHOLD", "Decision", "EmbeddingClassifier", "FAULT_KINDS",
           "LlmClassifier", "LocalRouter", "RouterStore", "TfidfClassifier", "Upstream", "create_app", "encode",
           "load_encoder", "make_classifier"]
