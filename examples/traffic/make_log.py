"""Write a realistic, synthetic request log for `evalkit suite from-traffic` (demo and tests).

The prompts are the CLINC150 queries of suites/clinc150-domains; the log looks like what an
application's gateway records for each call to a router: the request (OpenAI messages, often
with a system prompt), the response status, the served model and the route header. Like real
traffic it has:

- repeats: the same question asked again verbatim, and near-repeats (other casing, punctuation,
  a "please", "hey", "so" or "for me" added);
- personal data and secrets typed into prompts: e-mail addresses, phone numbers, card numbers
  (Luhn-valid), IBANs (valid check digits), IP addresses, API keys and bearer tokens;
- multi-turn conversations, logged one request per turn, each carrying the history;
- a rare route (`meta`: a handful of requests), failed requests without a route header, and
  routes that differ from the data set's label now and then (the router is not perfect).

Usage: python examples/traffic/make_log.py [--rows 3000] [--seed 7] [--out traffic.jsonl]
The same seed writes the same file. `make_log()` returns the rows and what was injected, so a
test can check that none of the personal data survives.
"""

from __future__ import annotations

import argparse
import json
import random
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLINC = ROOT / "suites" / "clinc150-domains" / "cases.jsonl"
ROUTE_HEADER = "x-model-router-selected-route"
RARE_ROUTE = "meta"
RARE_COUNT = 6
SYSTEM = "You are the assistant in the Acme mobile app. Answer briefly."
# Traffic share of each route (the rest of the shares; meta is rare on purpose).
WEIGHTS = {"banking": 18, "credit_cards": 14, "travel": 10, "kitchen_and_dining": 9, "auto_and_commute": 8,
           "home": 7, "utility": 7, "work": 6, "small_talk": 6, "fallback": 15}
SERVED = ["llama3.3-70b-instruct", "openai-gpt-oss-20b"]


@dataclass
class Injected:
    """What the generator put into the log that a scrubbed suite must not contain."""

    values: dict[str, list[str]] = field(default_factory=dict)   # kind -> raw values
    near_pairs: list[tuple[str, str]] = field(default_factory=list)
    routes: set[str] = field(default_factory=set)

    def add(self, kind: str, value: str) -> None:
        self.values.setdefault(kind, []).append(value)


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    digits = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return digits + str((10 - total % 10) % 10)


def iban_de(rng: random.Random) -> str:
    bban = "".join(rng.choice(string.digits) for _ in range(18))
    numeric = int(bban + "1314" + "00")  # D=13, E=14
    check = 98 - numeric % 97
    raw = f"DE{check:02d}{bban}"
    return " ".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def pii(rng: random.Random, injected: Injected) -> str:
    """One sentence carrying a fresh value of a random kind."""
    kind = rng.choice(["email", "phone", "card", "iban", "ip", "api_key", "bearer"])
    if kind == "email":
        user = rng.choice(["jane.doe", "m.rossi", "kim_lee", "o.brien+acme", "dev.ops"]) + str(rng.randint(1, 999))
        value = f"{user}@{rng.choice(['example.com', 'mail.example.org', 'acme.co.uk'])}"
        text = rng.choice([f"my email is {value}", f"reply to {value} please", f"({value})"])
    elif kind == "phone":
        area = rng.choice(["415", "646", "312", "206", "617"])
        value = f"{area}-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}"
        if rng.random() < 0.5:
            value = f"+1 ({area}) {value[4:]}"
        text = rng.choice([f"call me back on {value}", f"my number is {value}"])
    elif kind == "card":
        prefix = rng.choice(["4", "51", "37"])
        raw = luhn_complete(prefix, 15 if prefix == "37" else 16, rng)  # Amex numbers have 15 digits
        grouped = rng.random() < 0.6 and prefix != "37"
        value = " ".join(raw[i:i + 4] for i in range(0, 16, 4)) if grouped else raw
        text = rng.choice([f"my card {value} was declined", f"card number {value}"])
    elif kind == "iban":
        value = iban_de(rng)
        text = f"my IBAN is {value}"
    elif kind == "ip":
        value = f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        text = rng.choice([f"the server at {value} is down", f"I'm connecting from {value}"])
    elif kind == "api_key":
        value = "sk-do-" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(40))
        text = f"here is my key {value}"
    else:
        value = "dop_v1_" + "".join(rng.choice("0123456789abcdef") for _ in range(64))
        text = f"Authorization: Bearer {value}"
        kind = "api_key"
    injected.add(kind, value)
    return text


def near_variant(prompt: str, rng: random.Random) -> str:
    """The same request typed again a little differently (the first five differ only in case,
    punctuation, spacing or politeness; the others add a word or two)."""
    how = rng.choice(["case", "punct", "please", "hey", "space", "so", "for me", "now", "quick", "can you"])
    if how == "case":
        return prompt[:1].upper() + prompt[1:] + "?"
    if how == "punct":
        return prompt + "!!"
    if how == "please":
        return prompt + " please"
    if how == "hey":
        return "hey, " + prompt
    if how == "space":
        return prompt.replace(" ", "  ", 2) + " ?"
    if how == "so":
        return "so " + prompt
    if how == "for me":
        return prompt + " for me"
    if how == "now":
        return prompt + " now"
    if how == "quick":
        return "quick question: " + prompt
    return "can you tell me " + prompt


def make_log(rows: int = 3000, seed: int = 7) -> tuple[list[dict[str, Any]], Injected]:
    rng = random.Random(seed)
    by_route: dict[str, list[str]] = {}
    for line in CLINC.read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        by_route.setdefault(case["label"], []).append(case["prompt"])
    for prompts in by_route.values():
        rng.shuffle(prompts)
    injected = Injected()
    routes = list(WEIGHTS)
    records: list[tuple[list[dict[str, str]], str | None]] = []  # (messages, route) per request, in order
    singles: list[tuple[str, str]] = []

    def observed(label: str) -> str:
        if rng.random() < 0.08:  # the router is not perfect
            return rng.choice([r for r in routes if r != label])
        return label

    def messages_for(prompt: str) -> list[dict[str, str]]:
        return ([{"role": "system", "content": SYSTEM}] if rng.random() < 0.7 else []) + [{"role": "user", "content": prompt}]

    n_conv_rows = 0
    conversations: list[list[tuple[list[dict[str, str]], str]]] = []
    for _ in range(40):  # multi-turn conversations, 2-3 turns, one domain each
        label = rng.choice(routes[:-1])
        history: list[dict[str, str]] = [{"role": "system", "content": SYSTEM}]
        turns = []
        for _t in range(rng.choice([2, 3])):
            prompt = by_route[label].pop()
            history = [*history, {"role": "user", "content": prompt}]
            turns.append((list(history), observed(label)))
            history = [*history, {"role": "assistant", "content": "Sure, here is what I found."}]
        conversations.append(turns)
        n_conv_rows += len(turns)
    for _ in range(RARE_COUNT):
        singles.append((by_route[RARE_ROUTE].pop(), RARE_ROUTE))
    n_failed = max(1, rows // 100)
    n_dup = rows // 10
    n_near = rows // 20
    n_fresh = rows - n_conv_rows - RARE_COUNT - n_failed - n_dup - n_near
    for _ in range(n_fresh):
        left = [r for r in routes if by_route[r]]  # a route whose prompts ran out gives way to the others
        label = rng.choices(left, [WEIGHTS[r] for r in left])[0]
        prompt = by_route[label].pop()
        if rng.random() < 0.12:
            extra = pii(rng, injected)
            prompt = f"{prompt}, {extra}" if rng.random() < 0.5 else f"{extra}. {prompt}"
        singles.append((prompt, observed(label) if label != RARE_ROUTE else label))
    plain = [s for s in singles if s[1] != RARE_ROUTE and "@" not in s[0]]
    for _ in range(n_dup):
        singles.append(rng.choice(plain))
    for _ in range(n_near):
        prompt, route = rng.choice(plain)
        variant = near_variant(prompt, rng)
        injected.near_pairs.append((prompt, variant))
        singles.append((variant, route))
    rng.shuffle(singles)
    for prompt, route in singles:
        records.append((messages_for(prompt), route))
    for _ in range(n_failed):
        records.insert(rng.randrange(len(records)), (messages_for(rng.choice(plain)[0]), None))
    for turns in conversations:  # turns in order, spread through the log
        slots = sorted(rng.sample(range(len(records) + 1), len(turns)))
        for offset, (slot, turn) in enumerate(zip(slots, turns)):
            records.insert(slot + offset, turn)
    out = []
    for i, (messages, route) in enumerate(records):
        if route is not None:
            injected.routes.add(route)
        ok = route is not None
        out.append({
            "ts": f"2026-05-{1 + i * 28 // len(records):02d}T{(i * 7) % 24:02d}:{(i * 13) % 60:02d}:00Z",
            "request": {"model": "router:clinc150-domains", "messages": messages, "temperature": 0.2},
            "response": {"status": 200 if ok else 429, "model": rng.choice(SERVED) if ok else None,
                         "headers": {ROUTE_HEADER: route} if ok else {"retry-after": "2"}},
            "latency_ms": rng.randint(180, 2400),
        })
    return out, injected


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("traffic.jsonl"))
    args = parser.parse_args(argv)
    rows, _ = make_log(args.rows, args.seed)
    with args.out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} requests to {args.out}")


if __name__ == "__main__":
    main()
