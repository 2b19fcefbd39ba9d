"""Scrub personal data and secrets from prompt text before anything is written.

Replaces e-mail addresses, phone numbers, payment card numbers, IBANs, IP addresses and API
keys or tokens by typed placeholders (``<EMAIL>``, ``<PHONE>``, ``<CARD>``, ``<IBAN>``,
``<IP>``, ``<API_KEY>``) and counts what it replaced, by type, never keeping a value.

Validation is left to maintained libraries where one exists: phone numbers are found by
Google's libphonenumber (``phonenumbers``: numbers in international form anywhere, national
forms for ``region``), IBANs are checked by ``python-stdnum`` (country length, BBAN format and
the mod-97 check digits), card numbers by its Luhn check plus the issuer prefixes of the card
networks, IP addresses by the standard library's ``ipaddress``. Candidate spans come from
patterns; a candidate that fails its check (a Luhn-invalid 16-digit order number, an IBAN with
a wrong checksum, ``999.1.2.3``, a version string such as ``v1.2.3.4``) is left alone.

No spaCy or model-based detector: names and street addresses are not scrubbed, and the README
of every suite built from traffic says so.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["KINDS", "PLACEHOLDERS", "ScrubResult", "Scrubber", "scrub_text"]

KINDS = ("api_key", "email", "iban", "card", "ip", "phone")
PLACEHOLDERS = {"api_key": "<API_KEY>", "email": "<EMAIL>", "iban": "<IBAN>", "card": "<CARD>",
                "ip": "<IP>", "phone": "<PHONE>"}

# -- API keys and tokens: prefixes that providers put on their secrets ---------------------------
# The body of a key must hold a digit and a letter, so "sk-ski-resort-options" stays text.
_KEY_BODY = r"(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[A-Za-z])[A-Za-z0-9_\-]"
_KEY_PATTERNS = [
    rf"(?<![A-Za-z0-9_\-])sk-{_KEY_BODY}{{20,}}",                     # OpenAI, DigitalOcean (sk-do-), Anthropic (sk-ant-)
    r"(?<![A-Za-z0-9_])do[opr]_v1_[a-f0-9]{64}(?![A-Za-z0-9])",        # DigitalOcean tokens
    r"(?<![A-Za-z0-9_])(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}(?![A-Za-z0-9])",  # GitHub
    r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{40,}",
    r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Za-z0-9])",       # AWS access key ids
    r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_\-]{35}(?![A-Za-z0-9_\-])",       # Google API keys
    r"(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9\-]{10,}",                  # Slack
    r"(?<![A-Za-z0-9_\-])hf_[A-Za-z0-9]{30,}(?![A-Za-z0-9])",          # Hugging Face
    r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWT
]
_KEY_RE = re.compile("|".join(f"(?:{p})" for p in _KEY_PATTERNS))
# "Bearer <token>": the token (16+ characters of the RFC 6750 alphabet, with a digit) goes, the word stays.
_BEARER_RE = re.compile(r"(?i)(\bbearer\s+)((?=[A-Za-z0-9\-._~+/]*\d)[A-Za-z0-9\-._~+/]{16,}=*)")

_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9\-])")

# IBAN: country code, check digits, then the BBAN, often printed in groups of four.
_IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{1,4}){3,9}(?![A-Za-z0-9])")

# Cards: 13 to 19 digits, optionally grouped by single spaces or dashes.
_CARD_RE = re.compile(r"(?<![\d.,\-])\d(?:[ \-]?\d){12,18}(?![\d\-]|[.,]\d)")
_CARD_PREFIXES = (
    ("4",), ("51", "52", "53", "54", "55"), tuple(str(p) for p in range(2221, 2721)),  # Visa, Mastercard
    ("34", "37"), ("6011", "65") + tuple(str(p) for p in range(644, 650)),            # Amex, Discover
    tuple(str(p) for p in range(3528, 3590)), ("300", "301", "302", "303", "304", "305", "36", "38", "39"),
    ("62", "50") + tuple(str(p) for p in range(56, 70)),                               # UnionPay, Maestro
)
_ALL_CARD_PREFIXES = tuple(p for group in _CARD_PREFIXES for p in group)

_IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d|\w)")
_IPV6_RE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
# A dotted quad right after these words is a version or build number, not an address.
_VERSION_BEFORE = re.compile(r"(?i)(?:\bv|\bversion\s*|\bver\.?\s*|\brelease\s*|\bbuild\s*|\bfirmware\s*|"
                             r"\bupdate\s*|\bsdk\s*|\bpatch\s*|\bv\.\s*)$")


@dataclass
class ScrubResult:
    """Scrubbed text and how many values of each kind it replaced."""

    text: str
    counts: Counter[str] = field(default_factory=Counter)


def _luhn_ok(digits: str) -> bool:
    from stdnum import luhn

    return luhn.is_valid(digits)


def _is_card(candidate: str) -> bool:
    digits = re.sub(r"[ \-]", "", candidate)
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    if not digits.startswith(_ALL_CARD_PREFIXES):
        return False
    return _luhn_ok(digits)


def _is_iban(candidate: str) -> bool:
    from stdnum import iban

    return bool(iban.is_valid(candidate))


def _is_ipv4(candidate: str) -> bool:
    try:
        ipaddress.IPv4Address(candidate)
    except ValueError:
        return False
    return True


def _is_ipv6(candidate: str) -> bool:
    if sum(c.isalnum() for c in candidate) < 3:
        return False  # "::", "a::" and the like are more likely code than an address
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


class Scrubber:
    """Replaces personal data and secrets in text; ``region`` is the phone numbering plan for
    numbers written without a country code (ISO 3166 code, e.g. ``US``, ``GB``, ``DE``)."""

    def __init__(self, *, region: str = "US") -> None:
        import phonenumbers

        region = region.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region '{region}'")
        self.region = region

    def scrub(self, text: str) -> ScrubResult:
        """Scrub one text; placeholders contain no digits or '@', so later passes skip them."""
        counts: Counter[str] = Counter()
        text = self._keys(text, counts)
        text = _replace(_EMAIL_RE, text, "email", counts)
        text = self._ibans(text, counts)
        text = self._cards(text, counts)
        text = _replace(_IPV4_RE, text, "ip", counts, check=_is_ipv4, skip_after=_VERSION_BEFORE)
        text = _replace(_IPV6_RE, text, "ip", counts, check=_is_ipv6)
        text = self._phones(text, counts)
        return ScrubResult(text, counts)

    def _keys(self, text: str, counts: Counter[str]) -> str:
        text = _replace(_KEY_RE, text, "api_key", counts)

        def bearer(match: re.Match[str]) -> str:
            counts["api_key"] += 1
            return match.group(1) + PLACEHOLDERS["api_key"]
        return _BEARER_RE.sub(bearer, text)

    def _ibans(self, text: str, counts: Counter[str]) -> str:
        def one(match: re.Match[str]) -> str:
            # The pattern may run on into a following word ("... 0130 00 ASAP"): drop trailing
            # groups until the rest validates.
            parts = match.group(0).split(" ")
            for end in range(len(parts), 0, -1):
                head = " ".join(parts[:end])
                if len(head.replace(" ", "")) >= 15 and _is_iban(head):
                    counts["iban"] += 1
                    rest = " ".join(parts[end:])
                    return PLACEHOLDERS["iban"] + (" " + rest if rest else "")
            return match.group(0)
        return _IBAN_RE.sub(one, text)

    def _cards(self, text: str, counts: Counter[str]) -> str:
        def one(match: re.Match[str]) -> str:
            # "4111 1111 1111 1111 12 items": drop trailing groups until a card number remains.
            value = match.group(0)
            cuts = [m.start() for m in re.finditer(r"[ \-]", value)][::-1]
            for end in [len(value), *cuts]:
                if _is_card(value[:end]):
                    counts["card"] += 1
                    return PLACEHOLDERS["card"] + value[end:]
            return value
        return _CARD_RE.sub(one, text)

    def _phones(self, text: str, counts: Counter[str]) -> str:
        import phonenumbers

        if not any(c.isdigit() for c in text):
            return text
        pieces: list[str] = []
        last = 0
        for match in phonenumbers.PhoneNumberMatcher(text, self.region, leniency=phonenumbers.Leniency.VALID):
            pieces.append(text[last:match.start])
            pieces.append(PLACEHOLDERS["phone"])
            counts["phone"] += 1
            last = match.end
        pieces.append(text[last:])
        return "".join(pieces)


def _replace(pattern: re.Pattern[str], text: str, kind: str, counts: Counter[str], *,
             check: Callable[[str], bool] | None = None, skip_after: re.Pattern[str] | None = None) -> str:
    def one(match: re.Match[str]) -> str:
        value = match.group(0)
        if check is not None and not check(value):
            return value
        if skip_after is not None and skip_after.search(text[max(0, match.start() - 12):match.start()]):
            return value
        counts[kind] += 1
        return PLACEHOLDERS[kind]
    return pattern.sub(one, text)


def scrub_text(text: str, *, region: str = "US") -> ScrubResult:
    """Scrub one text with a default ``Scrubber`` (convenience for scripts and tests)."""
    return Scrubber(region=region).scrub(text)

