"""Steel's operator library: Data-Juicer-compatible mappers, filters and dedup fingerprints.

Knows nothing of executors, HTTP or torch. `operators.registry` maps names to classes.
"""

from operators.base import Deduplicator, Filter, Mapper, Op, OpParams
from operators.registry import RecipeError, build, get, names

__all__ = ["Deduplicator", "Filter", "Mapper", "Op", "OpParams", "RecipeError", "build", "get", "names"]
