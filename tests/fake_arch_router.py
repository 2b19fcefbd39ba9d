"""A strict stand-in for katanemo/Arch-Router-1.5B behind an OpenAI-compatible server (127.0.0.1).

It accepts ONLY the prompt format of the model card (https://huggingface.co/katanemo/Arch-Router-1.5B,
"Quickstart"): one user message whose text is ``TASK_INSTRUCTION.format(routes=json.dumps(routes),
conversation=json.dumps(conversation)) + FORMAT_PROMPT``. The card's text is copied here by hand,
independently of ``evalkit.emulator.arch_router``, so a drift on either side fails the tests.
The routes and the conversation inside the tags are JSON-parsed and checked (shape, Python
``json.dumps`` layout, and, when given, the exact routes expected); anything else is a 400.

The answer follows a deterministic rule that tests compute on their own (``decide``): a hash of
the conversation picks a route, ``other``, or a garbled answer.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Any

from fake_openai import FakeOpenAI, Reply

CARD_TASK_INSTRUCTION = """
You are a helpful assistant designed to find the best suited route.
You are provided with route description within <routes></routes> XML tags:
<routes>

{routes}

</routes>

<conversation>

{conversation}

</conversation>
"""

# The card's FORMAT_PROMPT has two trailing spaces (after "latest intent." and after the last
# JSON example); they are kept by the \x20 escapes below.
CARD_FORMAT_PROMPT = """
Your task is to decide which route is best suit with user intent on the conversation in <conversation></conversation> XML tags.  Follow the instruction:
1. If the latest intent from user is irrelevant or user intent is full filled, response with other route {"route": "other"}.
2. You must analyze the route descriptions and find the best match route for user latest intent.\x20
3. You only response the name of the route that best matches the user's request, use the exact name in the <routes></routes>.

Based on your analysis, provide your response in the following JSON formats if you decide to match any route:
{"route": "route_name"}\x20
"""

_head, _, _rest = CARD_TASK_INSTRUCTION.partition("{routes}")
_middle, _, _tail = _rest.partition("{conversation}")
PROMPT_RE = re.compile(re.escape(_head) + r"(?P<routes>.*)" + re.escape(_middle) + r"(?P<conversation>.*)"
                       + re.escape(_tail + CARD_FORMAT_PROMPT), re.DOTALL)

GARBLED = "I think this is about billing."


def card_prompt(routes: list[dict[str, str]], conversation: list[dict[str, str]]) -> str:
    """The model card's ``format_prompt(route_config, conversation)``."""
    return CARD_TASK_INSTRUCTION.format(routes=json.dumps(routes), conversation=json.dumps(conversation)) \
        + CARD_FORMAT_PROMPT


def decide(routes: list[dict[str, str]], conversation: list[dict[str, str]]) -> str:
    """The rule: a task name, ``other``, or ``GARBLED``, from a hash of the whole conversation."""
    digest = hashlib.sha256(json.dumps(conversation).encode()).digest()
    k = int.from_bytes(digest[:8], "big") % (len(routes) + 2)
    if k < len(routes):
        return routes[k]["name"]
    return "other" if k == len(routes) else GARBLED


class FormatError(ValueError):
    pass


def parse_request(body: dict[str, Any], expected_routes: list[dict[str, str]] | None) -> tuple[list, list]:
    """The routes and conversation of a request in the card's format; ``FormatError`` otherwise."""
    messages = body.get("messages")
    if not isinstance(messages, list) or len(messages) != 1:
        raise FormatError(f"expected exactly one message, got {messages!r:.200}")
    message = messages[0]
    if not isinstance(message, dict) or message.get("role") != "user" or not isinstance(message.get("content"), str):
        raise FormatError("the one message must be a user message with string content")
    match = PROMPT_RE.fullmatch(message["content"])
    if match is None:
        raise FormatError("the prompt is not the model card's template")
    try:
        routes = json.loads(match.group("routes"))
        conversation = json.loads(match.group("conversation"))
    except ValueError as exc:
        raise FormatError(f"JSON inside the tags does not parse: {exc}") from None
    if json.dumps(routes) != match.group("routes") or json.dumps(conversation) != match.group("conversation"):
        raise FormatError("the JSON inside the tags is not laid out by json.dumps")
    if not isinstance(routes, list) or not routes or not all(
            isinstance(r, dict) and list(r) == ["name", "description"]
            and all(isinstance(v, str) and v for v in r.values()) for r in routes):
        raise FormatError("routes must be a non-empty list of {name, description}")
    if expected_routes is not None and routes != expected_routes:
        raise FormatError(f"unexpected routes {routes!r:.300}")
    if not isinstance(conversation, list) or not conversation or not all(
            isinstance(m, dict) and list(m) == ["role", "content"] and m["role"] in ("user", "assistant")
            and isinstance(m["content"], str) and m["content"].strip() for m in conversation):
        raise FormatError("conversation must be a non-empty list of {role, content} user/assistant turns with text")
    if conversation[-1]["role"] != "user":
        raise FormatError("the conversation must end with the user's turn")
    return routes, conversation


class FakeArchRouter(FakeOpenAI):
    """Runs the strict server; ``.accepted`` holds each well-formed (routes, conversation), ``.rejected`` the rest."""

    def __init__(self, expected_routes: list[dict[str, str]] | None = None, *, rule: Any = decide) -> None:
        self.expected_routes = expected_routes
        self.rule = rule
        self.accepted: list[tuple[list, list]] = []
        self.rejected: list[str] = []
        self._lock = threading.Lock()
        super().__init__(self._answer)

    def _answer(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        try:
            routes, conversation = parse_request(body, self.expected_routes)
        except FormatError as exc:
            with self._lock:
                self.rejected.append(str(exc))
            return Reply(status=400, error_message=f"not the Arch-Router prompt format: {exc}")
        with self._lock:
            self.accepted.append((routes, conversation))
        answer = self.rule(routes, conversation)
        content = answer if answer == GARBLED else json.dumps({"route": answer})
        return Reply(content=content, prompt_tokens=len(body["messages"][0]["content"]) // 4, completion_tokens=6)
