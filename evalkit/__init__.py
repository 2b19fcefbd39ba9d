"""evalkit: measure the routing quality of semantic LLM routers."""

__version__ = "0.1.0"
SCHEMA_VERSION = 1

__all__ = ["__version__", "SCHEMA_VERSION"]
