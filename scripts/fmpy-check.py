#!/usr/bin/env python3
"""Cross-checks the demo FMUs of the built-in library with FMPy, the reference tool.

For every FMU in the directory (`<Model>.fmu` for FMI 3.0, `<Model>-fmi2.fmu` for FMI 2.0, as
examples/build_demo_fmus.rs writes them): fmpy.validation.validate_fmu finds no problem, and
FMPy simulates it in Co-Simulation and in Model Exchange (CVode), with the results checked
against the model's closed form or invariants. A model without a check here is a failure, so a
new library model cannot go unchecked. Exits non-zero on any mismatch.

Usage: fmpy-check.py <directory with the FMUs>
"""

import math
import pathlib
import shutil
import sys
import tempfile

import numpy as np
from fmpy import extract, instantiate_fmu, read_model_description, simulate_fmu
from fmpy.validation import validate_fmu

CS_RTOL = 1e-6  # Co-Simulation (RK4 with 1 ms substeps inside the FMU)
ME_RTOL = 1e-4  # Model Exchange with FMPy's CVode, away from events

failures = []


def check(condition, what):
    """Records a failed check (and prints it) without stopping the run."""
    if not condition:
        failures.append(what)
        print(f"  FAIL {what}")
    return condition


def close(actual, expected, rtol, atol=1e-12):
    return np.allclose(actual, expected, rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------ BouncingBall

G, E, H0 = 9.81, 0.7, 1.0
FIRST_BOUNCE = math.sqrt(2 * H0 / G)


def free_fall(t):
    """h and v of the ball before its first bounce."""
    return H0 - G * t**2 / 2, -G * t


def check_bouncing_ball(path, version, md):
    # the alias h_ft of h, shown in feet (FMPy lists it: an <Alias> in FMI 3, a variable
    # sharing h's value reference in FMI 2)
    h = next(v for v in md.modelVariables if v.name == "h")
    if version == "3.0":
        aliases = {a.name: a for a in h.aliases}
        check("h_ft" in aliases and aliases["h_ft"].displayUnit == "ft", "h_ft is an alias of h in ft")
    else:
        h_ft = [v for v in md.modelVariables if v.name == "h_ft"]
        check(h_ft and h_ft[0].valueReference == h.valueReference and h_ft[0].displayUnit == "ft",
              "h_ft shares h's value reference, display unit ft")
    units = {u.name: {d.name: d for d in u.displayUnits} for u in md.unitDefinitions}
    check(math.isclose(units["m"]["ft"].factor * 0.3048, 1.0, rel_tol=1e-15), "1 m = 1/0.3048 ft")
    check(math.isclose(units["m/s"]["km/h"].factor, 3.6, rel_tol=1e-15), "1 m/s = 3.6 km/h")
    check(h.unit == "m", "h in m")
    output = ["h", "v"] + (["h_ft"] if version == "2.0" else [])

    # Co-Simulation: the closed form before the first bounce, the bounce in between
    r = simulate_fmu(path, fmi_type="CoSimulation", stop_time=3.0, output_interval=0.01, output=output)
    before = r["time"] < FIRST_BOUNCE
    h_exact, v_exact = free_fall(r["time"][before])
    check(close(r["h"][before], h_exact, CS_RTOL, 1e-9), "CS: h = 1 - g t^2/2 before the bounce")
    check(close(r["v"][before], v_exact, CS_RTOL, 1e-9), "CS: v = -g t before the bounce")
    after = np.argmax(r["time"] > FIRST_BOUNCE)
    t = r["time"][after]
    v_after = E * G * FIRST_BOUNCE - G * (t - FIRST_BOUNCE)
    check(math.isclose(r["v"][after], v_after, rel_tol=CS_RTOL), f"CS: v after the bounce {r['v'][after]} = {v_after}")
    if version == "2.0":
        check(np.array_equal(r["h_ft"], r["h"]), "CS: h_ft reads h's value (in m)")
        check(close(r["h_ft"] * units["m"]["ft"].factor, r["h"] / 0.3048, 1e-15), "h_ft in ft = h / 0.3048")

    # Co-Simulation with event mode: FMPy records the early return at the bounce and the
    # state after the reset, two rows at the exact bounce time
    if version == "3.0":
        r = simulate_fmu(path, fmi_type="CoSimulation", stop_time=1.0, output_interval=0.01, output=output,
                         use_event_mode=True, early_return_allowed=True)
        check_event_rows(r, "CS event mode", 1e-9)

    # Model Exchange with CVode, events recorded: two rows at each bounce
    r = simulate_fmu(path, fmi_type="ModelExchange", stop_time=3.0, output_interval=0.01, output=output,
                     relative_tolerance=1e-8, record_events=True)
    before = r["time"] < FIRST_BOUNCE - 1e-6
    h_exact, v_exact = free_fall(r["time"][before])
    check(close(r["h"][before], h_exact, ME_RTOL, 1e-6), "ME: h = 1 - g t^2/2 before the bounce")
    check_event_rows(r, "ME", 1e-6)


def check_event_rows(r, label, time_tolerance):
    """Two rows at the first bounce: falling at v = -g tb before, rising at e g tb after."""
    same = np.flatnonzero(np.diff(r["time"]) == 0)
    if not check(len(same) > 0, f"{label}: the bounce is recorded as two rows at one time"):
        return
    i = same[0]
    check(abs(r["time"][i] - FIRST_BOUNCE) < time_tolerance, f"{label}: first bounce at {r['time'][i]} = {FIRST_BOUNCE}")
    check(math.isclose(r["v"][i], -G * FIRST_BOUNCE, rel_tol=ME_RTOL), f"{label}: v before the bounce {r['v'][i]}")
    check(math.isclose(r["v"][i + 1], E * G * FIRST_BOUNCE, rel_tol=ME_RTOL), f"{label}: v after the bounce {r['v'][i + 1]}")


# ----------------------------------------------------------------------- Dahlquist, VanDerPol

def check_dahlquist(path, version, md):
    for interface, rtol in [("CoSimulation", CS_RTOL), ("ModelExchange", ME_RTOL)]:
        r = simulate_fmu(path, fmi_type=interface, stop_time=5.0, output_interval=0.1, relative_tolerance=1e-8)
        check(close(r["x"], np.exp(-r["time"]), rtol, 1e-9), f"{interface}: x = exp(-t)")


def check_van_der_pol(path, version, md):
    # no closed form: the FMU's own RK4 (CS) and FMPy's CVode (ME) agree, and the start
    # follows the Taylor expansion x0 = 2 - t^2 (x1(0) = 0, der(x1)(0) = -2)
    cs = simulate_fmu(path, fmi_type="CoSimulation", stop_time=10.0, output_interval=0.01)
    me = simulate_fmu(path, fmi_type="ModelExchange", stop_time=10.0, output_interval=0.01,
                      relative_tolerance=1e-10, record_events=False)
    check(len(cs) == len(me), "CS and ME sample the same times")
    check(close(me["x0"], cs["x0"], ME_RTOL, 1e-5), "ME x0 = CS x0")
    check(close(me["x1"], cs["x1"], ME_RTOL, 1e-5), "ME x1 = CS x1")
    check(abs(cs["x0"][1] - (2 - 0.01**2)) < 1e-6, "x0(0.01) = 2 - t^2")


# ---------------------------------------------------------------------------------- Integrator

def check_integrator(path, version, md):
    for interface, rtol in [("CoSimulation", CS_RTOL), ("ModelExchange", ME_RTOL)]:
        r = simulate_fmu(path, fmi_type=interface, stop_time=5.0, output_interval=0.1,
                         start_values={"u": 2.0, "k": 3.0}, record_events=False)
        check(close(r["y"], 6.0 * r["time"], rtol, 1e-9), f"{interface}: y = k u t")


# --------------------------------------------------------------------------------- Feedthrough

# (input, output, start value, numpy dtype FMPy records the output with)
FEEDTHROUGH_3 = [
    ("Float32_continuous_input", "Float32_continuous_output", np.float32(1.25), np.float32),
    ("Float32_discrete_input", "Float32_discrete_output", np.float32(2.75), np.float32),
    ("Float64_continuous_input", "Float64_continuous_output", 3.25, np.float64),
    ("Float64_discrete_input", "Float64_discrete_output", 4.5, np.float64),
    ("Int8_input", "Int8_output", -100, np.int8),
    ("UInt8_input", "UInt8_output", 200, np.uint8),
    ("Int16_input", "Int16_output", -30000, np.int16),
    ("UInt16_input", "UInt16_output", 60000, np.uint16),
    ("Int32_input", "Int32_output", -2000000000, np.int32),
    ("UInt32_input", "UInt32_output", 4000000000, np.uint32),
    ("Int64_input", "Int64_output", -9000000000000000000, np.int64),
    ("UInt64_input", "UInt64_output", 18000000000000000000, np.uint64),
    ("Boolean_input", "Boolean_output", True, np.bool_),
    ("Enumeration_input", "Enumeration_output", 2, np.int64),
]
FEEDTHROUGH_2 = [
    ("Float64_continuous_input", "Float64_continuous_output", 3.25, np.float64),
    ("Float64_discrete_input", "Float64_discrete_output", 4.5, np.float64),
    ("Int32_input", "Int32_output", -2000000000, np.int32),
    ("Boolean_input", "Boolean_output", True, np.bool_),
    ("Enumeration_input", "Enumeration_output", 2, np.int32),
]
# values at the ends of each type's range, set as start values and read back
EXTREMES_3 = {
    "Float32_continuous_input": float(np.finfo(np.float32).max),
    "Float32_discrete_input": float(np.finfo(np.float32).tiny),
    "Float64_continuous_input": -1.7976931348623157e308,
    "Float64_discrete_input": 5e-324,
    "Int8_input": -128, "UInt8_input": 255, "Int16_input": -32768, "UInt16_input": 65535,
    "Int32_input": -2147483648, "UInt32_input": 4294967295,
    "Int64_input": -9223372036854775808, "UInt64_input": 18446744073709551615,
    "Boolean_input": False, "Enumeration_input": 1,
}
EXTREMES_2 = {
    "Float64_continuous_input": -1.7976931348623157e308, "Float64_discrete_input": 5e-324,
    "Int32_input": 2147483647, "Boolean_input": False, "Enumeration_input": 1,
}
TEXT = "Hello, FMU Gateway & <friends>"


def check_feedthrough(path, version, md):
    pairs = FEEDTHROUGH_3 if version == "3.0" else FEEDTHROUGH_2
    extremes = EXTREMES_3 if version == "3.0" else EXTREMES_2
    for interface in ["CoSimulation", "ModelExchange"]:
        r = simulate_fmu(path, fmi_type=interface, stop_time=1.0, output_interval=0.1)
        for _, output, start, dtype in pairs:
            check(r[output].dtype == dtype, f"{interface}: {output} is recorded as {dtype.__name__} ({r[output].dtype})")
            check(np.all(r[output] == start), f"{interface}: {output} = {start!r} exactly")
        r = simulate_fmu(path, fmi_type=interface, stop_time=1.0, output_interval=0.1, start_values=extremes)
        for name, output, _, dtype in pairs:
            check(np.all(r[output] == dtype(extremes[name])), f"{interface}: {output} round-trips {extremes[name]!r}")
        check_texts(path, version, md, interface)


def get_text(fmu, vr):
    """A String variable's value (FMPy's FMI 3 class decodes it, its FMI 2 class does not)."""
    [value] = fmu.getString([vr])
    return value.decode("utf-8") if isinstance(value, bytes) else value


def check_texts(path, version, md, interface):
    """Strings and binaries (FMPy's results leave them out): through FMPy's FMU classes. The
    refusals below make the FMU log errors, as it should."""
    vr = {v.name: v.valueReference for v in md.modelVariables}
    unzipdir = extract(path)
    try:
        fmu = instantiate_fmu(unzipdir, md, fmi_type=interface)
        string_input = "String_input" if version == "3.0" else "String_parameter"
        check(get_text(fmu, vr["String_output"]) == TEXT, f"{interface}: String_output = start")
        if version == "3.0":
            check(fmu.getBinary([vr["Binary_output"]]) == [bytes([0x00, 0xFF, 0x10, 0x42])],
                  f"{interface}: Binary_output = start, NUL and all")
            fmu.setBinary([vr["Binary_input"]], [bytes(range(256)) * 4])
            check(fmu.getBinary([vr["Binary_output"]]) == [bytes(range(256)) * 4], f"{interface}: a 1 KiB binary round-trips")
        text = "ünïcode, ☃ and a\ttab"
        fmu.setString([vr[string_input]], [text])
        check(get_text(fmu, vr["String_output"]) == text, f"{interface}: a UTF-8 string round-trips")
        # too long for the FMU (1024 bytes with the NUL): refused, not truncated
        try:
            fmu.setString([vr[string_input]], ["x" * 1024])
            check(False, f"{interface}: a string of 1025 bytes is refused")
        except Exception:
            pass
        check(get_text(fmu, vr["String_output"]) == text, f"{interface}: a refused set changes nothing")
        # outside min/max, and the wrong type: errors
        for name, setter, value in [("Enumeration_input", "setInteger" if version == "2.0" else "setInt64", 3),
                                    ("Float64_fixed_parameter", "setReal" if version == "2.0" else "setFloat64", 11.0),
                                    ("Int32_output" if version == "2.0" else "Int8_input", "setReal" if version == "2.0" else "setFloat64", 1.0)]:
            try:
                getattr(fmu, setter)([vr[name]], [value])
                check(False, f"{interface}: {setter}({name}, {value}) is refused")
            except Exception:
                pass
        fmu.freeInstance()
    finally:
        shutil.rmtree(unzipdir, ignore_errors=True)


# ---------------------------------------------------------------------------------- StateSpace

def state_space_defaults(m, n, r):
    """The defaults of fmus/src/models/StateSpace.c for m inputs, n states, r outputs."""
    a = np.diag(-np.arange(1.0, n + 1))
    if n > 1:
        a[0, 1] = 0.5
    return a, np.eye(n, m), np.eye(r, n), np.zeros((r, m)), np.arange(1.0, n + 1)


def state_space_solution(a, b, c, d, x0, u, t):
    """y(t) = C x(t) + D u for constant u, with the matrix exponential from numpy's
    eigendecomposition (A has distinct eigenvalues):
    x(t) = e^(At) x0 + A^-1 (e^(At) - I) B u."""
    eigenvalues, vectors = np.linalg.eig(a)
    inverse = np.linalg.inv(vectors)
    ys = []
    for time in t:
        exp_at = np.real(vectors @ np.diag(np.exp(eigenvalues * time)) @ inverse)
        x = exp_at @ x0 + np.linalg.solve(a, (exp_at - np.eye(len(x0))) @ (b @ u))
        ys.append(c @ x + d @ u)
    return np.array(ys)


def check_state_space(path, version, md):
    a, b, c, d, x0 = state_space_defaults(3, 3, 3)
    u = np.array([1.0, -2.0, 0.5])
    if version == "3.0":
        start_values = {"u": list(u)}
        columns = lambda r: r["y"]
    else:
        start_values = {f"u[{i + 1}]": u[i] for i in range(3)}
        columns = lambda r: np.stack([r[f"y[{i + 1}]"] for i in range(3)], axis=1)
    for interface, rtol in [("CoSimulation", CS_RTOL), ("ModelExchange", ME_RTOL)]:
        for inputs in [{}, start_values]:
            r = simulate_fmu(path, fmi_type=interface, stop_time=5.0, output_interval=0.1,
                             start_values=inputs, relative_tolerance=1e-8)
            y = columns(r)
            check(y.shape == (len(r), 3), f"{interface}: y has 3 columns")
            expected = state_space_solution(a, b, c, d, x0, u if inputs else np.zeros(3), r["time"])
            check(close(y, expected, rtol, 1e-8), f"{interface}, u = {'given' if inputs else 0}: y = C e^(At) x0 + ...")
    if version == "3.0":
        for n in [2, 5]:
            check_resized_state_space(path, md, n)


def check_resized_state_space(path, md, n):
    """With m = 3, n = r = `n` set in Configuration Mode (FMPy's simulate_fmu sizes its
    results from the XML, so this drives FMPy's FMU classes): the arrays take the new size,
    the state vector has n elements, y follows the closed form."""
    vr = {v.name: v.valueReference for v in md.modelVariables}
    unzipdir = extract(path)
    try:
        fmu = instantiate_fmu(unzipdir, md, fmi_type="CoSimulation")
        fmu.enterConfigurationMode()
        try:
            fmu.setUInt64([vr["n"]], [17])
            check(False, "n = 17 (above the limit 16) is refused")
        except Exception:
            pass
        fmu.setUInt64([vr["n"], vr["r"]], [n, n])
        fmu.exitConfigurationMode()
        a, b, c, d, x0 = state_space_defaults(3, n, n)
        check(np.array_equal(fmu.getFloat64([vr["A"]], nValues=n * n), a.flatten()), f"n = {n}: A is {n} x {n}, row-major")
        check(np.array_equal(fmu.getFloat64([vr["x0"]], nValues=n), x0), f"n = {n}: x0 has {n} elements")
        fmu.enterInitializationMode()
        fmu.exitInitializationMode()
        times = np.linspace(0.0, 2.0, 21)
        ys = [fmu.getFloat64([vr["y"]], nValues=n)]
        for t0, t1 in zip(times, times[1:]):
            fmu.doStep(currentCommunicationPoint=t0, communicationStepSize=t1 - t0)
            ys.append(fmu.getFloat64([vr["y"]], nValues=n))
        expected = state_space_solution(a, b, c, d, x0, np.zeros(3), times)
        check(close(np.array(ys), expected, CS_RTOL, 1e-8), f"n = {n}: CS y = C e^(At) x0")
        fmu.terminate()
        fmu.freeInstance()

        fmu = instantiate_fmu(unzipdir, md, fmi_type="ModelExchange")
        fmu.enterConfigurationMode()
        fmu.setUInt64([vr["n"]], [n])
        fmu.exitConfigurationMode()
        check(fmu.getNumberOfContinuousStates() == n, f"n = {n}: ME has {n} continuous states")
        fmu.freeInstance()
    finally:
        shutil.rmtree(unzipdir, ignore_errors=True)


# ------------------------------------------------------------------------------ Robertson

# Robertson's kinetics at t = 40, as the literature gives them (Hairer & Wanner).
ROBERTSON_40 = (0.7158, 9.185e-6, 0.2842)


def check_robertson(path, version, md):
    """Stiff: FMPy's CVode (BDF) in Model Exchange and the FMU's own implicit integrator in
    Co-Simulation both reach the literature values at t = 40, within their 4 digits."""
    for interface in ("ModelExchange", "CoSimulation"):
        r = simulate_fmu(path, fmi_type=interface, stop_time=40.0, output_interval=0.4,
                         relative_tolerance=1e-8, output=["y1", "y2", "y3"])
        got = tuple(float(r[name][-1]) for name in ("y1", "y2", "y3"))
        check(close(r["time"][-1], 40.0, 1e-12), f"{interface}: reaches t = 40")
        check(close(got, ROBERTSON_40, 1e-3),
              f"{interface}: y(40) = {got}, literature {ROBERTSON_40}")
        total = r["y1"] + r["y2"] + r["y3"]
        check(close(total, 1.0, 1e-6), f"{interface}: y1 + y2 + y3 stays 1")


CHECKS = {
    "BouncingBall": check_bouncing_ball,
    "Dahlquist": check_dahlquist,
    "VanDerPol": check_van_der_pol,
    "Integrator": check_integrator,
    "Feedthrough": check_feedthrough,
    "StateSpace": check_state_space,
    "Robertson": check_robertson,
}


def main():
    directory = pathlib.Path(sys.argv[1])
    fmus = sorted(directory.glob("*.fmu"))
    if not fmus:
        sys.exit(f"no FMUs in {directory}")
    for path in fmus:
        model = path.stem.removesuffix("-fmi2")
        md = read_model_description(str(path))
        print(f"== {path.name} (FMI {md.fmiVersion})")
        check(validate_fmu(str(path)) == [], f"{path.name}: fmpy validate_fmu finds no problem")
        checker = CHECKS.get(model)
        if not check(checker is not None, f"{model}: has a check in scripts/fmpy-check.py"):
            continue
        before = len(failures)
        try:
            checker(str(path), md.fmiVersion, md)
        except Exception as exception:
            check(False, f"{path.name}: {type(exception).__name__}: {exception}")
        if len(failures) == before:
            print("  ok")
    if failures:
        print(f"\n{len(failures)} check(s) failed")
        sys.exit(1)
    print(f"\nall {len(fmus)} FMUs agree with FMPy")


if __name__ == "__main__":
    main()
