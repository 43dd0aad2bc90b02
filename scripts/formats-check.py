"""Reads our result files with the tools their users read them with, and checks every value.

Usage: formats-check.py <fmu-gateway binary> <directory of demo FMUs>

For each case (the library's Feedthrough with every FMI type, its numbers only, and
StateSpace's arrays), runs `fmu-gateway fmu simulate … -o` into .json, .parquet and (for
results of numbers) .mat, then asserts that
- pyarrow.parquet reads a column per JSON column element (`time`, `y[1]`, `A[1,2]`, named as
  the CSV names them) in its Arrow type (float32 → float, uint64 → uint64, enumeration →
  int64, String → string, Binary → binary…), each value EQUAL to the JSON's;
- scipy.io.loadmat reads the MAT file in Dymola's layout (Aclass "Atrajectory" / "1.1" / "" /
  "binTrans", `name` and `description` one variable a column, `dataInfo` 4 × n with time the
  abscissa and each variable in data_2, `data_1` the start and stop time, `data_2` one row a
  variable), each value EQUAL to the JSON's (Booleans 0/1, enumerations their value);
- a MAT file of the result with text is refused, naming the column.
Exits non-zero on the first difference.
"""

import json
import math
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.io

EXE = sys.argv[1]
FMUS = pathlib.Path(sys.argv[2])

ARROW_TYPES = {
    "float64": pa.float64(),
    "float32": pa.float32(),
    "int8": pa.int8(),
    "uint8": pa.uint8(),
    "int16": pa.int16(),
    "uint16": pa.uint16(),
    "int32": pa.int32(),
    "uint32": pa.uint32(),
    "int64": pa.int64(),
    "uint64": pa.uint64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "binary": pa.binary(),
    "enumeration": pa.int64(),
}

FEEDTHROUGH_STARTS = {
    "Float32_discrete_input": "0.1",
    "Float64_discrete_input": "2.47e-321",
    "Int8_input": "-128",
    "UInt8_input": "255",
    "Int16_input": "-32768",
    "UInt16_input": "65535",
    "Int32_input": "-2147483648",
    "UInt32_input": "4294967295",
    "Int64_input": "-9223372036854775808",
    # 2^63: a double holds it exactly, so the MAT file has it too.
    "UInt64_input": "9223372036854775808",
    "Boolean_input": "true",
    "Enumeration_input": "Option 1",
}
NUMBER_OUTPUTS = [name.replace("_input", "_output") for name in FEEDTHROUGH_STARTS]
TEXT_OUTPUTS = ["String_output", "Binary_output"]


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def simulate(fmu, args, output):
    run = subprocess.run(
        [EXE, "fmu", "simulate", str(fmu), *args, "-o", str(output)],
        capture_output=True,
        text=True,
    )
    return run.returncode, run.stderr


def items_by_name(fmu):
    """Each enumeration variable's items, name to value (`fmu info --json`)."""
    info = json.loads(
        subprocess.run(
            [EXE, "fmu", "info", "--json", str(fmu)], capture_output=True, check=True
        ).stdout
    )
    return {
        v["name"]: {i["name"]: i["value"] for i in v["items"]}
        for v in info["variables"]
        if v.get("items")
    }


def element_names(name, shape):
    """The CSV's names of an array's elements, row-major from 1: A[1,1], A[1,2], …"""
    if not shape:
        return [name]
    names = []
    for index in np.ndindex(*shape):
        names.append(f"{name}[{','.join(str(i + 1) for i in index)}]")
    return names


def json_columns(result, items):
    """The JSON result as (column, type, values): arrays flattened row-major, each value as
    Python holds it exactly (float, int, bool, str, bytes; an enumeration by value)."""
    columns = [("time", "float64", [json_number(t) for t in result["time"]])]
    for name in result["variables"]:
        kind = result["types"][name]["type"]
        shape = result["types"][name].get("shape", [])
        rows = result["columns"][name]
        for e, element in enumerate(element_names(name, shape)):
            values = []
            for row in rows:
                value = np.array(row, dtype=object).reshape(-1)[e] if shape else row
                values.append(json_value(value, kind, items.get(name)))
            columns.append((element, kind, values))
    return columns


def json_number(value):
    names = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
    return names[value] if isinstance(value, str) else float(value)


def json_value(value, kind, items):
    if kind in ("float64", "float32"):
        number = json_number(value)
        # A Float32 is written as the shortest text that reads back as the same float32.
        return float(np.float32(number)) if kind == "float32" else number
    if kind == "binary":
        return bytes.fromhex(value)
    if kind == "enumeration":
        return items[value]
    return value


def check_parquet(path, columns, case):
    table = pq.read_table(path)
    if table.column_names != [c[0] for c in columns]:
        fail(f"{case}: Parquet columns {table.column_names} != {[c[0] for c in columns]}")
    for name, kind, values in columns:
        field = table.schema.field(name)
        if field.type != ARROW_TYPES[kind] or field.nullable:
            fail(f"{case}: Parquet {name} is {field.type} (nullable {field.nullable}), not {kind}")
        got = table.column(name).to_pylist()
        if kind == "float32":
            got = [float(np.float32(v)) for v in got]
        if len(got) != len(values) or not all(
            (isinstance(g, float) and math.isnan(g) and math.isnan(w)) or (g == w and type(g) is type(w))
            for g, w in zip(got, values)
        ):
            fail(f"{case}: Parquet {name} {got} != JSON {values}")
    print(f"ok: {case}: Parquet has {len(columns)} typed columns equal to the JSON")


def check_mat(path, columns, case):
    mat = scipy.io.loadmat(path, chars_as_strings=False)
    aclass = ["".join(row).rstrip() for row in mat["Aclass"]]
    if aclass != ["Atrajectory", "1.1", "", "binTrans"]:
        fail(f"{case}: Aclass {aclass}")
    # binTrans: one name a column, as Dymola's readers (DyMat's strMatTrans) take them.
    names = ["".join(chars).rstrip() for chars in zip(*mat["name"])]
    descriptions = ["".join(chars).rstrip() for chars in zip(*mat["description"])]
    if names != [c[0] for c in columns] or len(descriptions) != len(names):
        fail(f"{case}: MAT names {names} != {[c[0] for c in columns]}")
    info = mat["dataInfo"]
    if info.dtype != np.int32 or info.shape != (4, len(names)):
        fail(f"{case}: dataInfo is {info.dtype} {info.shape}")
    data_1, data_2 = mat["data_1"], mat["data_2"]
    time = columns[0][2]
    if data_1.tolist() != [[time[0], time[-1]]]:
        fail(f"{case}: data_1 {data_1.tolist()} is not the start and stop time")
    if data_2.dtype != np.float64 or data_2.shape != (len(names), len(time)):
        fail(f"{case}: data_2 is {data_2.dtype} {data_2.shape}")
    for i, (name, kind, values) in enumerate(columns):
        block, column, interpolation, extrapolation = (int(x) for x in info[:, i])
        expected = (0, 1) if i == 0 else (2, i + 1)
        if (block, column) != expected or (interpolation, extrapolation) != (0, -1):
            fail(f"{case}: dataInfo of {name} is {info[:, i].tolist()}")
        got = data_2[abs(column) - 1].tolist()
        want = [float(v) for v in values]  # Booleans 1.0/0.0; integers exact (checked below)
        for g, w, v in zip(got, want, values):
            exact = not isinstance(v, int) or isinstance(v, bool) or int(w) == v
            if not exact or not (g == w or (math.isnan(g) and math.isnan(w))):
                fail(f"{case}: MAT {name} {got} != JSON {values}")
    print(f"ok: {case}: MAT file in Dymola's layout with {len(names)} variables equal to the JSON")


def run_case(case, fmu, args, mat):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for extension in ["json", "parquet"] + (["mat"] if mat else []):
            code, stderr = simulate(fmu, args, tmp / f"r.{extension}")
            if code != 0:
                fail(f"{case}: .{extension}: {stderr}")
        result = json.loads((tmp / "r.json").read_text())
        columns = json_columns(result, items_by_name(fmu))
        check_parquet(tmp / "r.parquet", columns, case)
        if mat:
            check_mat(tmp / "r.mat", columns, case)
        else:
            code, stderr = simulate(fmu, args, tmp / "text.mat")
            if code == 0 or "'String_output' is a string variable" not in stderr:
                fail(f"{case}: a MAT file of text was not refused by name: {stderr}")
            print(f"ok: {case}: a MAT file of text is refused: {stderr.strip()}")


def main():
    feedthrough = FMUS / "Feedthrough.fmu"
    starts = [a for k, v in FEEDTHROUGH_STARTS.items() for a in ("--start", f"{k}={v}")]
    timing = ["--stop-time", "0.2", "--output-interval", "0.1"]

    def outputs(names):
        return [a for n in names for a in ("--output", n)]

    run_case("Feedthrough, numbers", feedthrough, timing + starts + outputs(NUMBER_OUTPUTS), True)
    run_case(
        "Feedthrough, every type",
        feedthrough,
        timing + starts + ["--start", "Binary_input=00ff10"] + outputs(NUMBER_OUTPUTS + TEXT_OUTPUTS),
        False,
    )
    state_space = ["--stop-time", "1", "--output-interval", "0.25"] + outputs(["y", "x", "A"])
    run_case("StateSpace, arrays", FMUS / "StateSpace.fmu", state_space, True)


main()
