#!/usr/bin/env python3
"""Cross-checks our simulation results against FMPy's on every demo FMU of the library.

For every FMU in the directory (as examples/build_demo_fmus.rs writes them) and each interface
it offers, the same run is made twice: by our CLI (`fmu-gateway fmu simulate`, the sandboxed
worker and the result file a server would stream, as CSV) and by FMPy (Model Exchange with
CVode). Both must record the same columns (an FMI 3 array's elements are columns `y[1]`, …),
and at every output point away from events the same values: floats within 1e-6 relative in
Co-Simulation (the FMU integrates itself) and 1e-4 in Model Exchange (two different solvers),
every other type exactly. Exits non-zero on any difference.

Usage: fmpy-crosscheck.py <fmu-gateway binary> <directory with the FMUs>
"""

import csv
import io
import pathlib
import subprocess
import sys

import numpy as np
from fmpy import read_model_description, simulate_fmu

RTOL = {"CoSimulation": 1e-6, "ModelExchange": 1e-4}
# Stop times long enough to see each model do what it does.
STOP = {"BouncingBall": 3.0, "VanDerPol": 10.0, "Dahlquist": 5.0, "Integrator": 2.0,
        "Feedthrough": 1.0, "StateSpace": 5.0, "Robertson": 40.0}
INTERFACE = {"CoSimulation": "cs", "ModelExchange": "me"}

failures = []


def fail(what):
    failures.append(what)
    print(f"  FAIL {what}")


def ours(binary, path, interface, stop, interval, outputs):
    """Our CLI's result as (header, rows of text)."""
    args = [binary, "fmu", "simulate", str(path), "--interface", INTERFACE[interface],
            "--stop-time", repr(stop), "--output-interval", repr(interval), "--tolerance", "1e-8"]
    for name in outputs:
        args += ["--output", name]
    out = subprocess.run(
        args,
        capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"fmu-gateway fmu simulate failed: {out.stderr.strip()}")
    rows = list(csv.reader(io.StringIO(out.stdout)))
    return rows[0], rows[1:]


def fmpy_columns(result, md):
    """FMPy's result as {column name: list of values}, arrays split into their elements."""
    columns = {}
    for name in result.dtype.names:
        values = result[name]
        if values.ndim == 1:
            columns[name] = list(values)
            continue
        shape = values.shape[1:]
        for index in np.ndindex(*shape):
            label = ",".join(str(i + 1) for i in index)
            columns[f"{name}[{label}]"] = [row[index] for row in values]
    return columns


def same(ours_text, theirs, rtol, scale):
    """Whether our CSV field says the same value as FMPy's."""
    if isinstance(theirs, (bytes, bytearray)):
        return ours_text == bytes(theirs).hex()
    if isinstance(theirs, (bool, np.bool_)):
        return ours_text == ("true" if theirs else "false")
    if isinstance(theirs, str):
        return ours_text == theirs
    if isinstance(theirs, (np.integer, int)):
        return int(ours_text) == int(theirs)
    value = float(ours_text)
    return abs(value - float(theirs)) <= rtol * max(abs(float(theirs)), scale * 1e-3, 1e-12)


def compare(label, header, rows, result, md, rtol):
    columns = fmpy_columns(result, md)
    # FMPy does not record String and Binary variables: those columns are ours alone (their
    # values are proven exact by tests/api/types.rs).
    text = {v.name for v in md.modelVariables if v.type in ("String", "Binary")}
    ours_only = sorted(n for n in header[1:] if n not in columns)
    theirs_only = sorted(c for c in columns if c != "time" and c not in header)
    if theirs_only or any(n not in text for n in ours_only):
        fail(f"{label}: columns {header[1:]} vs FMPy's {sorted(columns)}")
        return
    names = [n for n in header[1:] if n in columns]
    time = [float(r[0]) for r in rows]
    theirs_time = list(result["time"])
    events = {t for t, u in zip(time, time[1:]) if t == u}
    events |= {t for t, u in zip(theirs_time, theirs_time[1:]) if t == u}
    interval = (time[-1] - time[0]) / 100
    scale = {n: max((abs(float(v)) for v in columns[n]
                     if not isinstance(v, (bytes, str, bytearray))), default=0.0)
             for n in names if len(columns[n]) and not isinstance(columns[n][0], (bytes, str, bytearray))}
    compared = 0
    by_time = {}
    for i, t in enumerate(theirs_time):
        by_time.setdefault(round(t, 9), i)
    position = {n: header.index(n) for n in names}
    for row, t in zip(rows, time):
        if any(abs(t - e) <= 1.5 * interval for e in events):
            continue
        i = by_time.get(round(t, 9))
        if i is None:
            continue
        for name in names:
            field, theirs = row[position[name]], columns[name][i]
            if not same(field, theirs, rtol, scale.get(name, 0.0)):
                fail(f"{label}: {name}({t}) is {field}, FMPy gives {theirs!r}")
                return
        compared += 1
    if compared < 20:
        fail(f"{label}: only {compared} output points could be compared")
    else:
        print(f"  {label}: {compared} points × {len(names)} columns agree")


def main():
    binary, directory = sys.argv[1], pathlib.Path(sys.argv[2])
    fmus = sorted(directory.glob("*.fmu"))
    if not fmus:
        sys.exit(f"no FMUs in {directory}")
    for path in fmus:
        model = path.stem.removesuffix("-fmi2")
        md = read_model_description(str(path))
        print(f"== {path.name} (FMI {md.fmiVersion})")
        if model not in STOP:
            fail(f"{model}: has a stop time in scripts/fmpy-crosscheck.py")
            continue
        stop = STOP[model]
        interval = stop / 100
        for interface, offered in [("CoSimulation", md.coSimulation),
                                   ("ModelExchange", md.modelExchange)]:
            if offered is None:
                continue
            label = f"{path.name} {INTERFACE[interface]}"
            try:
                # Every output, and FMI 3 aliases of outputs (FMPy lists those as variables).
                outputs = [v.name for v in md.modelVariables if v.causality == "output"]
                header, rows = ours(binary, path, interface, stop, interval, outputs)
                result = simulate_fmu(str(path), fmi_type=interface, stop_time=stop,
                                      output_interval=interval, output=outputs,
                                      relative_tolerance=1e-8, record_events=True)
                compare(label, header, rows, result, md, RTOL[interface])
            except Exception as exception:
                fail(f"{label}: {type(exception).__name__}: {exception}")
    if failures:
        print(f"\n{len(failures)} cross-check(s) failed")
        sys.exit(1)
    print(f"\nour results agree with FMPy's on all {len(fmus)} FMUs")


if __name__ == "__main__":
    main()
