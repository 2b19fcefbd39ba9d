"""Price catalog and per-request cost (pure apart from reading the catalog file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from importlib import resources
from pathlib import Path

import yaml

from evalkit.errors import PriceError


@dataclass(frozen=True)
class Price:
    """USD per million input and output tokens."""

    input: float
    output: float
    source: str = ""
    date: str = ""


def default_catalog_text() -> str:
    return resources.files("evalkit.data").joinpath("prices.yaml").read_text(encoding="utf-8")


def load_prices(path: str | Path | None = None) -> dict[str, Price]:
    """The price catalog: the packaged one, or ``path`` when given."""
    if path is None:
        return parse_prices(default_catalog_text(), source="evalkit/data/prices.yaml")
    p = Path(path)
    if not p.is_file():
        raise PriceError("price file not found", where=str(p), fix="give a YAML file like evalkit/data/prices.yaml")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PriceError("price file is not UTF-8 text", where=str(p), fix="save it as UTF-8 YAML") from None
    return parse_prices(text, source=str(p))


def parse_prices(text: str, *, source: str) -> dict[str, Price]:
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise PriceError("YAML nested too deeply to be a price catalog", where=source,
                         fix="write models: {<slug>: {input: <USD/M>, output: <USD/M>}}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PriceError(f"invalid YAML: {getattr(exc, 'problem', exc)}",
                         where=f"{source}:{mark.line + 1}" if mark else source, fix="fix the YAML syntax") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise PriceError("a price catalog needs a 'models' mapping", where=source,
                         fix="write models: {<slug>: {input: <USD/M>, output: <USD/M>}}")
    prices: dict[str, Price] = {}
    for slug, entry in data["models"].items():
        if not isinstance(entry, dict):
            raise PriceError("a price entry must be a mapping", where=f"{source} at models.{slug}",
                             fix="write {input: 0.05, output: 0.45}")
        for key in ("input", "output"):
            value = entry.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise PriceError(f"price '{key}' must be a non-negative number (USD per million tokens)",
                                 where=f"{source} at models.{slug}.{key}", got=repr(value),
                                 fix=f"e.g. {key}: 0.45")
        prices[str(slug)] = Price(float(entry["input"]), float(entry["output"]),
                                  str(entry.get("source", "")), str(entry.get("date", "")))
    return prices


def request_cost(price: Price | None, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
    """USD for one request; ``None`` (unknown) when the model has no price or usage is missing."""
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    return (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000


def cost_summary(results: "list[Any]") -> dict[str, Any]:
    """Total, per-path totals, means and shares of the router's cost (judge cost is kept apart).

    A case whose served model has no price has ``cost_usd`` None: it is counted as unknown,
    never as zero.
    """
    per_path: dict[str, dict[str, Any]] = {}
    total = 0.0
    unknown = 0
    for r in results:
        if r.status == "error":
            continue
        path = r.route if r.route is not None else "(missing)"
        entry = per_path.setdefault(path, {"n": 0, "total_usd": 0.0, "n_unknown_cost": 0,
                                           "prompt_tokens": 0, "completion_tokens": 0})
        entry["n"] += 1
        entry["prompt_tokens"] += r.prompt_tokens or 0
        entry["completion_tokens"] += r.completion_tokens or 0
        if r.cost_usd is None:
            entry["n_unknown_cost"] += 1
            unknown += 1
        else:
            entry["total_usd"] += r.cost_usd
            total += r.cost_usd
    for entry in per_path.values():
        known = entry["n"] - entry["n_unknown_cost"]
        entry["mean_usd"] = entry["total_usd"] / known if known else None
        entry["share"] = entry["total_usd"] / total if total else None
    return {"total_usd": total, "n_unknown_cost": unknown, "per_path": per_path}
