"""Read a user's YAML file (suite.yaml, a price catalog, a traffic file) with a bound on aliases.

YAML anchors and aliases (``&a`` / ``*a``) let a 415-byte document stand for billions of values
(the "billion laughs"): the parser shares the repeated nodes, but anything that walks the result
(validation, ``repr``, hashing) expands them. The document is composed first, its size *after
alias expansion* is counted over the shared nodes (cheap), and a document over
``MAX_YAML_NODES`` values is refused before any Python object is built.
"""

from __future__ import annotations

from typing import Any

import yaml

from evalkit.errors import EvalkitError

MAX_YAML_NODES = 100_000  # scalars, lists and mappings, counting each alias use in full


def _expanded_size(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = limit + 1  # a node that contains itself (a recursive alias) is unbounded
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo, limit)
            if size > limit:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, limit) + _expanded_size(v, memo, limit)
            if size > limit:
                break
    memo[key] = size
    return size


def load_yaml(text: str, *, error: type[EvalkitError], where: str,
              limit: int = MAX_YAML_NODES) -> tuple[Any, yaml.Node | None]:
    """The document of ``text`` and its node (for line numbers); ``error`` when aliases expand
    it beyond ``limit`` values or it is nested too deeply. YAML syntax errors propagate as
    ``yaml.YAMLError`` for the caller to place."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if _expanded_size(node, {}, limit) > limit:
            raise error(f"YAML aliases expand this file to over {limit:,} values (an alias bomb?)",
                        where=where, fix="write the values out instead of repeating anchors (&name) "
                                         "through aliases (*name)")
        return loader.construct_document(node), node
    except RecursionError:
        raise error("YAML nested too deeply", where=where,
                    fix="keep the file to a few levels of keys and lists") from None
    finally:
        loader.dispose()
