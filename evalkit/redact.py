"""Secrets, credentials in URLs and terminal control codes out of remote text.

Every key evalkit uses comes from an environment variable; whoever reads one registers it here
(``register``), and every place where remote text (an HTTP body, an error message, a header)
becomes stored or printed text goes through a ``Redactor``. A redactor replaces by ``[redacted]``:

- the key itself (keys shorter than 8 characters are never matched: too likely to be text);
- any piece of it 12 characters or longer (a truncated or partly masked echo: ``sk-do-1a2b3c4d...``);
- its base64, standard and URL-safe, padded or not, also inside a longer base64 text (the
  ``Authorization: Basic`` header of ``user:key`` is caught at any byte alignment);
- its URL-encoding (``quote`` and ``quote_plus``).

``safe_url`` strips user info from a URL and masks its query values, for every URL that is
recorded or printed (the request itself uses the real URL); ``register_url`` registers the
password and query values of a URL evalkit sends requests to, so an echo of them is redacted too. ``terminal_safe`` strips terminal
control sequences from remote text before it is printed.
"""

from __future__ import annotations

import base64
import functools
import re
import threading
from typing import Any, Iterable
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit, urlunsplit

__all__ = ["REDACTED", "Redactor", "forget", "redact", "register", "register_url", "registered", "safe_url",
           "terminal_safe"]

REDACTED = "[redacted]"
MIN_SECRET_LEN = 8      # shorter values are not matched at all
MIN_FRAGMENT_LEN = 12   # a piece of a key this long is redacted too
_BLOCK = MIN_FRAGMENT_LEN // 2  # every run of MIN_FRAGMENT_LEN characters holds one aligned block this long

_lock = threading.Lock()
_registered: set[str] = set()


def register(*secrets: str | None) -> None:
    """Remember keys read from the environment for this process: every ``Redactor`` also redacts them."""
    with _lock:
        _registered.update(s for s in secrets if s and len(s) >= MIN_SECRET_LEN)


# query parameters whose value is a credential (``api-version=2024-02-01`` is not: dates stay readable)
_SECRET_PARAM = re.compile(r"(?i)key|token|secret|pass|pwd|sig|auth|cred|session|code")


def register_url(url: str | None) -> None:
    """Register the credentials a URL carries: its password and the values of credential-like query
    parameters (``?api_key=...``, ``?token=...``, ``?sig=...``)."""
    if not url:
        return
    try:
        parts = urlsplit(url.strip())
        password = parts.password
    except ValueError:
        return
    register(password, *(value for name, value in parse_qsl(parts.query) if _SECRET_PARAM.search(name)))


def forget() -> None:
    """Forget every registered key (tests; a long-lived process done with its keys)."""
    with _lock:
        _registered.clear()


def registered() -> frozenset[str]:
    with _lock:
        return frozenset(_registered)


def _variants(secret: str) -> list[str]:
    """The key and the forms it travels in: URL-encoded, base64 at each byte alignment."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    raw = secret.encode("utf-8")
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii")
        if shift == 0:
            core = [encoded, encoded.rstrip("=")]
        else:
            # the first group holds the filler bytes, the last one depends on what follows the key
            core = [encoded[4:-4]] if len(encoded) > 8 else []
        for text in core:
            forms.add(text)
            forms.add(text.replace("+", "-").replace("/", "_"))
    return [f for f in forms if len(f) >= MIN_SECRET_LEN]


class _Matcher:
    """Every form of a set of keys: short forms matched whole, long ones by any 12-character piece.

    Any piece of a form ``MIN_FRAGMENT_LEN`` long contains one of the form's blocks (its
    ``_BLOCK``-long slices at multiples of ``_BLOCK``) whole, so one regular expression of all the
    blocks finds every candidate in one pass; each hit is then extended along its form both ways.
    """

    def __init__(self, forms: Iterable[str]) -> None:
        self.exact = [f for f in forms if len(f) < MIN_FRAGMENT_LEN]
        self.index: dict[str, list[tuple[str, int]]] = {}
        for form in forms:
            if len(form) >= MIN_FRAGMENT_LEN:
                for i in range(0, len(form) - _BLOCK + 1, _BLOCK):
                    self.index.setdefault(form[i:i + _BLOCK], []).append((form, i))
        self.blocks = re.compile("|".join(map(re.escape, sorted(self.index)))) if self.index else None

    def spans(self, text: str) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        for form in self.exact:
            start = text.find(form)
            while start >= 0:
                found.append((start, start + len(form)))
                start = text.find(form, start + 1)
        if self.blocks is None:
            return found
        pos = 0
        while (hit := self.blocks.search(text, pos)) is not None:
            at = hit.start()
            for form, offset in self.index[hit.group()]:
                left, i = at, offset
                while left > 0 and i > 0 and text[left - 1] == form[i - 1]:
                    left, i = left - 1, i - 1
                right, j = at + _BLOCK, offset + _BLOCK
                while right < len(text) and j < len(form) and text[right] == form[j]:
                    right, j = right + 1, j + 1
                if right - left >= MIN_FRAGMENT_LEN:
                    found.append((left, right))
            pos = at + 1  # blocks may overlap: look again from the next character
        return found


@functools.lru_cache(maxsize=64)
def _matcher(secrets: frozenset[str]) -> _Matcher:
    return _Matcher({form for secret in secrets for form in _variants(secret)})


class Redactor:
    """Replaces the given keys (and every registered one) in text and in JSON-like values."""

    def __init__(self, secrets: Iterable[str | None] = (), *, include_registered: bool = True) -> None:
        self._own = frozenset(s for s in secrets if s and len(s) >= MIN_SECRET_LEN)
        self._include_registered = include_registered

    def _current(self) -> _Matcher | None:
        secrets = self._own | registered() if self._include_registered else self._own
        return _matcher(secrets) if secrets else None

    def longest(self) -> int:
        """The length of the longest key redacted (0: none), for a caller that redacts text as it
        arrives and must hold back enough of it that a key cut by a chunk is still seen whole."""
        secrets = self._own | registered() if self._include_registered else self._own
        return max(map(len, secrets), default=0)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where ``text`` holds a key, a piece of a key or an encoded key: (start, end) pairs, sorted."""
        matcher = self._current() if len(text) >= MIN_SECRET_LEN else None
        return sorted(matcher.spans(text)) if matcher is not None else []

    def text(self, text: str | None) -> str | None:
        """``text`` with every key, piece of a key and encoded key replaced by ``[redacted]``."""
        if not text or len(text) < MIN_SECRET_LEN:
            return text
        matcher = self._current()
        if matcher is None:
            return text
        spans = sorted(matcher.spans(text))
        if not spans:
            return text
        pieces, last = [], 0
        for start, end in spans:
            if end <= last:
                continue
            if start >= last:
                pieces.append(text[last:start])
                pieces.append(REDACTED)
            last = end
        pieces.append(text[last:])
        return "".join(pieces)

    __call__ = text

    def value(self, value: Any) -> Any:
        """A JSON-like value (dicts, lists, strings) with every string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


def redact(text: str | None, secrets: Iterable[str | None] = ()) -> str | None:
    """``text`` with ``secrets`` (and every registered key) replaced by ``[redacted]``."""
    return Redactor(secrets).text(text)


def safe_url(url: str | None) -> str | None:
    """A URL fit to record or print: no user info, query values and fragment masked.

    ``http://user:pass@host/v1?api_key=k&x=1`` becomes ``http://host/v1?api_key=[redacted]&x=[redacted]``.
    Text that is not a URL is returned with registered keys redacted.
    """
    if not url:
        return url
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        port = parts.port
    except ValueError:
        return redact(url)
    if not parts.scheme or not parts.netloc:
        return redact(url)
    netloc = parts.netloc.rpartition("@")[2] if "@" in parts.netloc else parts.netloc
    if host and "@" in parts.netloc:
        netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    query = "&".join(f"{pair.partition('=')[0]}={REDACTED}" if pair else pair
                     for pair in parts.query.split("&")) if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, fragment)))


# ESC-introduced sequences: CSI (ESC [ ... final), OSC / DCS / SOS / PM / APC strings (ended by BEL or
# ESC \), and two-character escapes; then the 8-bit C1 forms of CSI and the string introducers.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b[\]PX^_].*?(?:\x07|\x1b\\|$)"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|[\x90\x9d\x98\x9e\x9f].*?(?:\x07|\x9c|\x1b\\|$)",
    re.DOTALL)
# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides that reorder what is shown
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """Remote text fit for a terminal: escape sequences and control characters removed (tab and newline kept)."""
    if not text or text.isprintable():
        return text
    return _CONTROLS.sub("", _ESCAPES.sub("", text))
