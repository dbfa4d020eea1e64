"""The one record type of the data side: an Arrow table with the text column, `id`, and source fields."""

from __future__ import annotations

import pyarrow as pa

ID = "id"
# Internal columns carried between the shard stage and the final stage, never in the output.
ORDER = "_order"  # global input position: (shard index << 32) | row within the shard
SIMHASH = "_simhash"
INTERNAL = (ORDER, SIMHASH)


def order_of(shard_index: int, row: int) -> int:
    return (shard_index << 32) | row


def strip_internal(table: pa.Table) -> pa.Table:
    return table.drop_columns([c for c in INTERNAL if c in table.column_names])
