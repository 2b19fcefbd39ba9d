"""Start the target of a run and connect to it: the embedded local router (started here and
stopped afterwards), a DigitalOcean router (or the temporary router of ``--candidate``), or any
OpenAI-compatible router."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator

from evalkit.cost import Price
from evalkit.records import TargetInfo
from evalkit.run.spec import TargetSpec
from evalkit.suites import Suite
from evalkit.targets import DO_INFERENCE_URL, DO_KEY_ENV, OpenAITarget, api_key_from_env, make_endpoint, resolve_route_header


@contextlib.contextmanager
def open_target(spec: TargetSpec, suite: Suite, prices: dict[str, Price], *, concurrency: int,
                status: Callable[[str], None] = lambda s: None) -> Iterator[OpenAITarget]:
    """Start (for ``local``) and connect to the target; stop it afterwards."""
    spec.check()
    header = resolve_route_header(spec.route_header)
    router_name = spec.router_name or suite.router.name
    if spec.kind == "local":
        with _local_target(spec, suite, prices, header=header, router_name=router_name, concurrency=concurrency,
                           status=status) as target:
            yield target
        return
    if spec.kind == "do":
        base_url = spec.base_url or os.environ.get("EVALKIT_DO_INFERENCE_URL", DO_INFERENCE_URL)
        key = api_key_from_env(spec.api_key_env or DO_KEY_ENV, target="do")
        if spec.candidate is not None:
            from evalkit.run.candidate import candidate_target

            with candidate_target(spec, base_url, key, header, concurrency=concurrency, status=status) as target:
                yield target
            return
        model = spec.model or f"router:{router_name}"
    else:
        assert spec.base_url, "TargetSpec.check refuses --target openai without --base-url"
        base_url = spec.base_url
        model = spec.model or f"router:{router_name}"
        key = api_key_from_env(spec.api_key_env, target="openai") if spec.api_key_env else "none"
    info = TargetInfo(kind=spec.kind, base_url=base_url, model=model, route_header=header, router_name=router_name)
    client = make_endpoint(base_url, key, timeout=spec.timeout, concurrency=concurrency)
    yield OpenAITarget(client, model=model, route_header=header, info=info, stream=spec.stream)


@contextlib.contextmanager
def _local_target(spec: TargetSpec, suite: Suite, prices: dict[str, Price], *, header: str, router_name: str,
                  concurrency: int, status: Callable[[str], None]) -> Iterator[OpenAITarget]:
    """The embedded local router serving the suite's router config, on a free port, for the run."""
    from evalkit.emulator import LocalRouter, create_app
    from evalkit.emulator.classifier import MODEL_CLASSIFIERS, classifier_from_options, load_encoder
    from evalkit.emulator.upstream import check_keys, parse_upstreams

    check_keys(parse_upstreams(spec.upstreams))
    classifier = classifier_from_options(spec.classifier, threshold=spec.threshold, model=spec.classifier_model,
                                         base_url=spec.classifier_base_url,
                                         api_key_env=spec.classifier_api_key_env, upstreams=spec.upstreams)
    threshold = None if spec.classifier in MODEL_CLASSIFIERS else classifier.threshold
    if spec.classifier == "embedding":
        status("loading the local router's embedding model")
        load_encoder()
    app = create_app([suite.router], classifier=classifier, prices=prices, upstreams=spec.upstreams)
    local = LocalRouter(app).start()
    info = TargetInfo(kind="local", base_url=local.base_url, model=f"router:{router_name}",
                      route_header=header, router_name=router_name, classifier=spec.classifier,
                      threshold=threshold, note=local_router_note(classifier))
    client = make_endpoint(local.base_url, "evalkit-local", timeout=spec.timeout, concurrency=concurrency)
    try:
        yield OpenAITarget(client, model=info.model, route_header=header, info=info, stream=spec.stream)
    finally:
        local.stop()


def local_router_note(classifier: Any) -> str:
    """The manifest's note on the local router: what classified (model and URL for a model classifier)."""
    describe = getattr(classifier, "describe", None)
    if describe is None:
        return "embedded local router (a proxy for the real classifier)"
    return f"embedded local router, classifier {classifier.name}: {describe()}"


def cache_scope(info: TargetInfo, suite: Suite, spec: TargetSpec) -> dict[str, Any]:
    """What identifies the target and router for the response cache (the local router's port is not)."""
    scope = info.model_dump(exclude={"note"})
    if spec.base_url and info.kind != "local":
        scope["base_url"] = spec.base_url  # the real URL (only hashed): the recorded one masks query values
    if info.kind == "local":
        scope.pop("base_url", None)
        scope["upstreams"] = dict(sorted(spec.upstreams.items()))
    scope["router_hash"] = suite.router.hash
    scope["stream"] = spec.stream
    return scope
