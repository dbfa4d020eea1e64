"""Steel's data side: recipes, readers/writers, executors, dedup, statistics, token shards, CLI.

Imports no torch or HTTP framework; `ray` only inside `steel_data.ray_executor`.
"""

__version__ = "0.1.0"
