"""Scrubbing personal data and secrets: each kind found and replaced, each near-miss left alone."""

from __future__ import annotations

import pytest

from evalkit.scrub import Scrubber, scrub_text

FOUND = [
    # (text, kind, what must be gone)
    ("mail me at jane.doe+acme@mail.example.org today", "email", "jane.doe+acme@mail.example.org"),
    ("reply to M.Rossi@acme.co.uk.", "email", "M.Rossi@acme.co.uk"),
    ("call me back on 415-555-2671", "phone", "415-555-2671"),
    ("my number is +44 20 7946 0958", "phone", "7946 0958"),
    ("ring +1 (646) 555-3890 after 5", "phone", "555-3890"),
    ("my card 4111 1111 1111 1111 was declined", "card", "4111 1111 1111 1111"),
    ("card 5555-5555-5555-4444 ok", "card", "5555-5555-5555-4444"),
    ("amex 378282246310005", "card", "378282246310005"),
    ("IBAN DE89 3704 0044 0532 0130 00 please", "iban", "DE89 3704 0044 0532 0130 00"),
    ("pay GB82WEST12345698765432 now", "iban", "GB82WEST12345698765432"),
    ("the server at 203.0.113.42 is down", "ip", "203.0.113.42"),
    ("v6 host 2001:db8::ff00:42:8329 refuses", "ip", "2001:db8::ff00:42:8329"),
    ("key sk-do-AbCdEf0123456789GhIjKlMnOp", "api_key", "sk-do-AbCdEf0123456789GhIjKlMnOp"),
    ("openai sk-proj-abcDEF123456ghiJKL789mno", "api_key", "sk-proj-abcDEF123456ghiJKL789mno"),
    ("token dop_v1_" + "0123456789abcdef" * 4 + " leaked", "api_key", "dop_v1_" + "0123456789abcdef" * 4),
    ("Authorization: Bearer eyJhbGciOi.J9abc123xyz789", "api_key", "eyJhbGciOi.J9abc123xyz789"),
    ("aws AKIAIOSFODNN7EXAMPLE here", "api_key", "AKIAIOSFODNN7EXAMPLE"),
]

NEAR_MISSES = [
    "a Luhn-invalid card: 4111 1111 1111 1112",
    "order number 9111111111111111 shipped",          # Luhn-valid, but no card network starts with 9
    "IBAN with a bad checksum DE89 3704 0044 0532 0130 01",
    "running version 1.2.3.4 of the app",
    "upgrade to v10.0.0.1 tonight",
    "not an address: 999.1.2.3",
    "semver 1.2.3.4.5 is not an address",
    "meet at 10:30:45 sharp",
    "write to user@localhost for help",
    "the sk-ski-resort-booking-options page",
    "risk-assessment-framework-v2-final-2024",
    "the bearer of this letter",
    "on 2024-01-15 the total was 1,234,567.89",
    "call 555-0100 (a fictional number)",
    "zip 94103-1234",
]


@pytest.mark.parametrize("text,kind,value", FOUND, ids=[f"{k}-{i}" for i, (_, k, _) in enumerate(FOUND)])
def test_found_and_replaced_by_its_placeholder(text, kind, value):
    result = scrub_text(text)
    assert value not in result.text
    assert dict(result.counts) == {kind: 1}
    assert f"<{kind.upper()}>" in result.text


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_miss_is_left_alone(text):
    result = scrub_text(text)
    assert result.text == text
    assert sum(result.counts.values()) == 0


def test_counts_by_kind_and_the_rest_of_the_text_is_kept():
    text = ("I'm kim@example.com, +1 415 555 2671; card 4111111111111111; from 198.51.100.7; "
            "key sk-do-0123456789abcdefABCDEF and kim2@example.com")
    result = scrub_text(text)
    assert dict(result.counts) == {"email": 2, "phone": 1, "card": 1, "ip": 1, "api_key": 1}
    assert result.text == ("I'm <EMAIL>, <PHONE>; card <CARD>; from <IP>; key <API_KEY> and <EMAIL>")


def test_trailing_word_after_an_iban_or_card_is_kept():
    assert scrub_text("IBAN DE89 3704 0044 0532 0130 00 ASAP").text == "IBAN <IBAN> ASAP"
    assert scrub_text("card 4111 1111 1111 1111 12 items").text == "card <CARD> 12 items"


def test_bearer_keeps_the_word_and_replaces_the_token():
    assert scrub_text("bearer abcdefgh12345678").text == "bearer <API_KEY>"


def test_national_phone_numbers_follow_the_region():
    text = "mein Telefon: 030 901820"
    assert scrub_text(text, region="US").text == text
    assert scrub_text(text, region="DE").text == "mein Telefon: <PHONE>"


def test_unknown_region_is_refused():
    with pytest.raises(ValueError, match="unknown phone region"):
        Scrubber(region="XX")


def test_text_without_anything_to_scrub_is_unchanged():
    text = "How do I export my invoices as CSV?"
    assert scrub_text(text).text == text
