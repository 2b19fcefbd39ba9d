"""The ``arch-router`` classifier: katanemo/Arch-Router-1.5B through any OpenAI-compatible server.

The DigitalOcean Inference Router is reported to be built on Plano (katanemo/plano, formerly
archgw), whose preference-aligned routing used the Arch-Router-1.5B model until Plano 0.4.19.
This classifier sends that model exactly the prompt its model card gives, so that a user who
serves the model locally (Ollama, llama.cpp's server, vLLM) gets the closest offline stand-in
for the production classifier that we know of.

The prompt (one user message) is built from the model card's own template, reproduced verbatim
below from https://huggingface.co/katanemo/Arch-Router-1.5B (README, "How to use" / "Quickstart":
``TASK_INSTRUCTION``, ``FORMAT_PROMPT`` and ``format_prompt``): the task instruction with the
routes as JSON inside ``<routes></routes>``, the conversation as JSON inside
``<conversation></conversation>``, then the format instruction, both JSON documents made by
Python's ``json.dumps`` with its default separators, as on the card.

Where Plano's own integration (``crates/brightstaff/src/router/router_model_v1.rs``, removed in
Plano 0.4.19) differed from the card, we follow the card and say so here:

- Plano's template has no blank lines around ``{routes}`` and ``{conversation}``, one fewer
  newline between the two halves, and no trailing spaces; it serialised the JSON compactly
  (``serde_json::to_string``: no space after ``:`` and ``,``). The card's layout is used.
- Plano sent ``temperature: 0.01``; we send ``temperature: 0`` (greedy, like the card's
  ``model.generate``) and cap the answer at ``MAX_ANSWER_TOKENS``.
- What goes into the conversation follows Plano: system, developer and tool messages and
  messages without text are left out, and only the most recent turns within
  ``MAX_CONVERSATION_TOKENS`` (estimated at four characters a token) are kept, the latest user
  message always whole.
- Plano sent a route name that names no task to its default model; we count it, like any
  answer that is not ``{"route": ...}``, as a classifier error (never silently a route).

Answers: ``{"route": "<task name>"}`` is that task (an exact match, else a case-insensitive
one), ``{"route": "other"}`` is ``fallback``. Code fences and the single-quoted dict small models
sometimes write are accepted. Anything else raises ``ArchRouterAnswerError``; the local router
answers it with HTTP 502, code ``classifier_bad_answer``, and ``evalkit run`` records the case as
an error (counted in ``n_errors`` and in ``run.n_classifier_errors``).
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

from evalkit.emulator.classifier import Decision, LlmClassifierError
from evalkit.records import FALLBACK, message_text
from evalkit.redact import Redactor, safe_url

if TYPE_CHECKING:  # pragma: no cover
    from evalkit.router_config import RouterConfig

__all__ = ["ARCH_ROUTER_MODEL", "FORMAT_PROMPT", "TASK_INSTRUCTION", "ArchRouterAnswerError", "ArchRouterClassifier",
           "build_arch_router_prompt", "parse_arch_router_answer", "routing_conversation"]

ARCH_ROUTER_MODEL = "katanemo/Arch-Router-1.5B"

# Verbatim from the model card (https://huggingface.co/katanemo/Arch-Router-1.5B, "Quickstart"),
# written line by line so that its two trailing spaces survive editors that strip them.
TASK_INSTRUCTION = (
    "\n"
    "You are a helpful assistant designed to find the best suited route.\n"
    "You are provided with route description within <routes></routes> XML tags:\n"
    "<routes>\n"
    "\n"
    "{routes}\n"
    "\n"
    "</routes>\n"
    "\n"
    "<conversation>\n"
    "\n"
    "{conversation}\n"
    "\n"
    "</conversation>\n"
)

FORMAT_PROMPT = (
    "\n"
    "Your task is to decide which route is best suit with user intent on the conversation in "
    "<conversation></conversation> XML tags.  Follow the instruction:\n"
    '1. If the latest intent from user is irrelevant or user intent is full filled, response with other route '
    '{"route": "other"}.\n'
    "2. You must analyze the route descriptions and find the best match route for user latest intent. \n"
    "3. You only response the name of the route that best matches the user's request, use the exact name in the "
    "<routes></routes>.\n"
    "\n"
    "Based on your analysis, provide your response in the following JSON formats if you decide to match any route:\n"
    '{"route": "route_name"} \n'
)

OTHER = "other"
MAX_CONVERSATION_TOKENS = 2048  # Plano's MAX_TOKEN_LEN for the Arch-Router model
CHARS_PER_TOKEN = 4
MAX_ANSWER_TOKENS = 64          # an answer is one short JSON object
DEFAULT_CONCURRENCY = 16        # routing requests in flight at once
DEFAULT_TIMEOUT_S = 120.0       # the local router's upstream timeout
DEFAULT_RETRIES = 1             # of a 429 / 5xx / timeout / refused connection, with backoff
MAX_SHOWN = 200                 # characters of a bad answer quoted in an error message
ROUTING_ROLES = ("user", "assistant")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")


def routing_conversation(messages: list[Any]) -> list[dict[str, str]]:
    """Pure: the conversation the routing model reads, as ``[{"role", "content"}]``.

    User and assistant messages with text, content parts joined into one string; the most
    recent within ``MAX_CONVERSATION_TOKENS`` (a user message that crosses the limit is kept
    whole and ends the walk back, as in Plano). Never empty when ``messages`` holds a user
    message with text.
    """
    turns = [{"role": m["role"], "content": message_text(m)} for m in messages
             if isinstance(m, dict) and m.get("role") in ROUTING_ROLES and message_text(m).strip()]
    kept: list[dict[str, str]] = []
    tokens = 0
    for turn in reversed(turns):
        tokens += len(turn["content"]) // CHARS_PER_TOKEN
        if tokens > MAX_CONVERSATION_TOKENS:
            if turn["role"] == "user" or not kept:
                kept.append(turn)
            break
        kept.append(turn)
    return list(reversed(kept))


def route_list(router: "RouterConfig") -> list[dict[str, str]]:
    """Pure: the routes as the model card writes them, ``[{"name", "description"}]`` in policy order."""
    return [{"name": t.name, "description": t.description} for t in router.tasks]


def build_arch_router_prompt(messages: list[Any], router: "RouterConfig") -> str:
    """Pure: the model card's prompt (``format_prompt(route_config, conversation)``) for ``messages``."""
    return TASK_INSTRUCTION.format(routes=json.dumps(route_list(router)),
                                   conversation=json.dumps(routing_conversation(messages))) + FORMAT_PROMPT


class ArchRouterAnswerError(LlmClassifierError):
    """The routing model answered something that is not ``{"route": "<task name or other>"}``."""

    code = "classifier_bad_answer"


def shown(text: str) -> str:
    """A model's answer fit for an error message: control characters dropped, at most MAX_SHOWN characters."""
    text = _CONTROLS.sub(" ", text).strip()
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


def _route_field(answer: str) -> Any:
    text = answer.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except RecursionError:  # nested deeper than the parser goes: not an answer
        return None
    except ValueError:
        try:  # the single-quoted dict a small model sometimes writes: {'route': 'other'}
            data = ast.literal_eval(text) if len(text) <= 10_000 else None
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    if not isinstance(data, dict) or "route" not in data:
        return None
    return data["route"]


def parse_arch_router_answer(answer: str | None, task_names: list[str], *, model: str = ARCH_ROUTER_MODEL) -> str:
    """Pure: the task the answer names, ``fallback`` for ``other``; ``ArchRouterAnswerError`` otherwise."""
    route = _route_field(answer) if isinstance(answer, str) else None
    if not isinstance(route, str) or not route.strip():
        got = "gave an empty answer" if not answer else f"answered '{shown(answer)}'"
        raise ArchRouterAnswerError(f"classifier error: routing model '{model}' {got}, "
                                    'not {"route": "<task name>"} or {"route": "other"}')
    name = route.strip()
    if name in task_names:
        return name
    if name == OTHER:
        return FALLBACK
    folded = [t for t in task_names if t.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    if name.lower() == OTHER:
        return FALLBACK
    raise ArchRouterAnswerError(f"classifier error: routing model '{model}' answered route '{shown(name)}', "
                                f"which is not a task of the router ({', '.join(task_names)}) nor 'other'")


class ArchRouterClassifier:
    """Arch-Router-1.5B (or a model trained on its prompt) behind an OpenAI-compatible endpoint.

    Reads the whole conversation (``classify_conversation``); ``classify(text)`` routes a single
    user message. At most ``max_concurrency`` routing requests are in flight; each has a
    ``timeout_s`` deadline and ``retries`` retries of a 429, 5xx, timeout or refused connection
    (exponential backoff with jitter, ``Retry-After`` honoured, by the OpenAI SDK).
    """

    name = "arch-router"
    reads_conversation = True

    def __init__(self, *, base_url: str, model: str = ARCH_ROUTER_MODEL, api_key: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
                 max_concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.model = model
        self.base_url = base_url
        self._api_key = api_key
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_concurrency = max(1, max_concurrency)
        self.threshold = 0.0  # the model decides; there is no similarity to threshold
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._slots: asyncio.Semaphore | None = None

    def describe(self) -> str:
        """For startup lines and manifests: model and URL, never the key."""
        return f"{self.model} at {safe_url(self.base_url)}"

    def _session(self) -> tuple[Any, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._slots is None or self._loop is not loop:
            import openai  # a new event loop (a server restarted with the same classifier): new pool

            from evalkit.targets import capped_async_client

            self._loop = loop
            # the model's answer is read under the size cap of evalkit's clients (docs/reliability.md)
            self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._api_key or "none",
                                              max_retries=self.retries, timeout=self.timeout_s,
                                              http_client=capped_async_client(self.timeout_s, follow_redirects=True))
            self._slots = asyncio.Semaphore(self.max_concurrency)
        return self._client, self._slots

    def _redact(self, text: str) -> str:
        return Redactor([self._api_key]).text(text) or ""

    async def classify(self, text: str, router: "RouterConfig") -> Decision:
        return await self.classify_conversation([{"role": "user", "content": text}], router)

    async def classify_conversation(self, messages: list[Any], router: "RouterConfig") -> Decision:
        import openai

        from evalkit.targets import ResponseRefused, refusal_of

        prompt = build_arch_router_prompt(messages, router)
        client, slots = self._session()
        try:
            async with slots:
                completion = await client.chat.completions.create(
                    model=self.model, messages=[{"role": "user", "content": prompt}], temperature=0,
                    max_tokens=MAX_ANSWER_TOKENS)
        except openai.APIStatusError as exc:
            detail = shown(self._redact(str(getattr(exc, "message", "") or "")))
            raise LlmClassifierError(f"classifier error: routing model '{self.model}' at {_url(self.base_url)} answered "
                                     f"HTTP {exc.status_code}: {detail}") from None
        except (openai.OpenAIError, ResponseRefused) as exc:
            refused = refusal_of(exc)  # an answer too large, or in an encoding not asked for
            raise LlmClassifierError(f"classifier error: routing model '{self.model}' at {_url(self.base_url)} failed: "
                                     f"{refused.message if refused else type(exc).__name__}") from None
        try:
            answer = completion.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            answer = None
        route = parse_arch_router_answer(answer if isinstance(answer, str) else None, router.task_names,
                                         model=self.model)
        if route == FALLBACK:
            return Decision(FALLBACK, 0.0, {})
        return Decision(route, 1.0, {route: 1.0})


def _url(url: str) -> str:
    return safe_url(url) or url
