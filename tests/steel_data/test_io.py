"""steel_data.io: atomic writes and the pandas probe."""

import subprocess
import sys

import pyarrow as pa
import pytest

from steel_data.io import write_bytes_atomic


def test_atomic_write_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    write_bytes_atomic(target, b"payload")
    assert target.read_bytes() == b"payload"
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_skip_pandas_probe_keeps_pandas_out_and_usable():
    pytest.importorskip("pandas")  # the probe only costs anything where pandas is installed
    # A fresh interpreter: the probes run once per process.
    code = """
import sys
import pyarrow as pa
from steel_data.io import skip_pandas_probe
assert skip_pandas_probe()
pa.array(["a", None]); pa.array([1, 2]); pa.table({"t": ["x"]}); pa.Table.from_pylist([{"t": "y"}])
print("after conversions:", "pandas" in sys.modules)
frame = pa.table({"t": [1, 2]}).to_pandas()
print("to_pandas:", type(frame).__name__, int(frame["t"].sum()))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "after conversions: False" in out
    assert "to_pandas: DataFrame 3" in out


def test_skip_pandas_probe_is_a_no_op_once_pandas_is_loaded():
    pytest.importorskip("pandas")
    from steel_data.io import skip_pandas_probe

    assert skip_pandas_probe() is False
    assert pa.array([1]).to_pylist() == [1]


@pytest.mark.parametrize("rows", [[], [0], [4], [0, 1, 2, 3, 4], [0, 2, 4], [1, 2, 4], [3, 4], list(range(1, 5))])
def test_take_rows_equals_arrow_take(rows):
    from steel_data.io import take_rows

    table = pa.table({"n": [0, 1, 2, 3, 4], "s": ["a", None, "c", "d", "e"], "l": [[1], [], None, [2, 3], [4]]})
    assert take_rows(table, rows).equals(table.take(pa.array(rows, pa.int64())))


def test_take_rows_leaves_pyarrow_compute_unimported():
    code = """
import sys
import pyarrow as pa
from steel_data.io import skip_pandas_probe, take_rows
skip_pandas_probe()
t = take_rows(pa.table({"n": list(range(10))}), [1, 2, 5, 9])
print(t.column("n").to_pylist(), "pyarrow.compute" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[1, 2, 5, 9] False"
