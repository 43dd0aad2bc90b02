//! Reference checks: a run's result compared with a reference result, as `fmusim
//! --reference-file` and the FMI Reference FMUs' tests do.
//!
//! A reference is CSV (RFC 4180) with a header `time,<variable>,…`, the same CSV our results
//! download as (an array's elements `y[1]`, `y[2]`, …). Each reference variable is compared at
//! the reference's own time points:
//!
//! - floats: the result is interpolated linearly at the reference time, and the point passes
//!   when `|result − reference| ≤ abs_tol + rel_tol·|reference|` (both NaN, or the same
//!   infinity, is equal; any other non-finite pair is outside, without a deviation);
//! - integers, enumerations (by value or item name) and Booleans: the result's value held at
//!   that time (the last row at or before it) must equal the reference exactly; Strings and
//!   Binary (hex, any case) likewise.
//!
//! Event instants are skipped: a time that appears twice in either the reference or the
//! result is an event (both record the value just before and just after it), and the
//! reference points at it are not compared, since the value there is either side's. Points
//! beside an event are compared: a reference should record its events, as FMPy does, or its
//! points near them compare with the wrong side.
//!
//! The result is read from its file in chunks (a window per column), so the check needs
//! memory for the reference (bounded by [`MAX_REFERENCE_BYTES`]) and a few chunks, however
//! long the result.

use std::io;

use serde::{Deserialize, Serialize};

use super::recorded::{Recorded, Storage, ValueType, Values};
use super::result_file::ResultFile;

/// Default absolute tolerance (in the variable's unit).
pub const DEFAULT_ABS_TOL: f64 = 1e-6;
/// Default relative tolerance (of the reference value).
pub const DEFAULT_REL_TOL: f64 = 1e-3;
/// Largest reference read (an inline reference is bounded lower by the request body limit).
pub const MAX_REFERENCE_BYTES: usize = 8 << 20;
/// Rows read from the result file at once, per column.
const WINDOW_ROWS: usize = 4096;

/// The band a variable's values must stay in.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    pub abs_tol: f64,
    pub rel_tol: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            abs_tol: DEFAULT_ABS_TOL,
            rel_tol: DEFAULT_REL_TOL,
        }
    }
}

impl Tolerance {
    /// Whether `value` is within the band around `reference`.
    fn admits(self, value: f64, reference: f64) -> bool {
        (value - reference).abs() <= self.abs_tol + self.rel_tol * reference.abs()
    }

    /// A problem when a tolerance is negative or not finite (a band that admits everything or
    /// nothing is a request mistake).
    pub fn problem(self) -> Option<String> {
        let bad = |t: f64| !(t.is_finite() && t >= 0.0);
        (bad(self.abs_tol) || bad(self.rel_tol)).then(|| {
            format!(
                "tolerances must be finite and not negative (abs_tol {}, rel_tol {})",
                crate::format::Number(self.abs_tol),
                crate::format::Number(self.rel_tol)
            )
        })
    }
}

/// The tolerances of a check: one default, and overrides by variable (column) name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tolerances {
    pub default: Tolerance,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_variable: Vec<(String, Tolerance)>,
}

impl Tolerances {
    fn of(&self, name: &str) -> Tolerance {
        self.by_variable
            .iter()
            .find(|(n, _)| n == name)
            .map_or(self.default, |(_, t)| *t)
    }
}

/// A reference read from CSV: its times and, per variable, the cells as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    pub time: Vec<f64>,
    pub columns: Vec<ReferenceColumn>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceColumn {
    pub name: String,
    /// One cell per reference time, as written (parsed by the result column's type).
    pub cells: Vec<String>,
}

/// Why a reference cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReferenceError {
    #[error("the reference is larger than {} MiB", MAX_REFERENCE_BYTES >> 20)]
    TooLarge,
    #[error("the reference is not CSV: {0}")]
    NotCsv(String),
    #[error("the reference's header must be 'time' followed by at least one variable")]
    Header,
    #[error("the reference names variable '{0}' twice")]
    DuplicateColumn(String),
    #[error("the reference has no rows")]
    Empty,
    #[error("reference row {row}: {message}")]
    Row { row: usize, message: String },
}

impl Reference {
    /// Reads a reference from CSV text.
    pub fn parse(text: &str) -> Result<Reference, ReferenceError> {
        if text.len() > MAX_REFERENCE_BYTES {
            return Err(ReferenceError::TooLarge);
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text.as_bytes());
        let header = reader
            .headers()
            .map_err(|e| ReferenceError::NotCsv(e.to_string()))?
            .clone();
        if header.len() < 2 || header.get(0).map(str::trim) != Some("time") {
            return Err(ReferenceError::Header);
        }
        let mut columns: Vec<ReferenceColumn> = Vec::with_capacity(header.len() - 1);
        for name in header.iter().skip(1) {
            let name = unneutralised(name.trim()).to_string();
            if name.is_empty() {
                return Err(ReferenceError::Header);
            }
            if columns.iter().any(|c| c.name == name) {
                return Err(ReferenceError::DuplicateColumn(name));
            }
            columns.push(ReferenceColumn {
                name,
                cells: Vec::new(),
            });
        }
        let mut time = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let row = i + 2;
            let record = record.map_err(|e| ReferenceError::NotCsv(e.to_string()))?;
            if record.len() != header.len() {
                return Err(ReferenceError::Row {
                    row,
                    message: format!("{} cells, the header has {}", record.len(), header.len()),
                });
            }
            let t: f64 = record[0]
                .trim()
                .parse()
                .ok()
                .filter(|t: &f64| t.is_finite())
                .ok_or_else(|| ReferenceError::Row {
                    row,
                    message: format!("time '{}' is not a finite number", &record[0]),
                })?;
            if time.last().is_some_and(|&last| t < last) {
                return Err(ReferenceError::Row {
                    row,
                    message: "time goes back".into(),
                });
            }
            time.push(t);
            for (column, cell) in columns.iter_mut().zip(record.iter().skip(1)) {
                column.cells.push(cell.to_string());
            }
        }
        if time.is_empty() {
            return Err(ReferenceError::Empty);
        }
        Ok(Reference { time, columns })
    }

    /// Whether reference row `i` is at an event of the reference (its time given twice).
    fn is_event_row(&self, i: usize) -> bool {
        let t = self.time[i];
        (i > 0 && same_time(self.time[i - 1], t))
            || self.time.get(i + 1).is_some_and(|&n| same_time(n, t))
    }
}

/// A column name as written, without the `'` our CSV puts before a name that a spreadsheet
/// would take for a formula.
fn unneutralised(name: &str) -> &str {
    match name.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => name,
    }
}

/// Two times are the same instant when they differ by rounding only (an output grid computed
/// as `i · interval` against a time written in decimal).
fn same_time(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

/// The verdict of a check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceCheck {
    /// Every variable passed and nothing else went wrong.
    pub passed: bool,
    pub variables: Vec<VariableCheck>,
    /// What failed the check beyond single variables (the reference outlasts the run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// One variable's verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariableCheck {
    pub name: String,
    pub passed: bool,
    /// Reference points compared (event instants and points outside the run are not).
    pub points_compared: u64,
    /// Points outside the band (or unequal, for exact types).
    pub points_outside: u64,
    /// The largest finite |result − reference| (numbers, Booleans as 0 and 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_deviation: Option<f64>,
    /// Where the largest deviation is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_time: Option<f64>,
    /// The first time the result leaves the band.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_outside: Option<f64>,
    pub abs_tol: f64,
    pub rel_tol: f64,
    /// Why the variable could not be compared (not recorded by the run, a cell that is not
    /// of its type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl VariableCheck {
    fn new(name: &str, tolerance: Tolerance) -> VariableCheck {
        VariableCheck {
            name: name.to_string(),
            passed: false,
            points_compared: 0,
            points_outside: 0,
            max_deviation: None,
            at_time: None,
            first_outside: None,
            abs_tol: tolerance.abs_tol,
            rel_tol: tolerance.rel_tol,
            problem: None,
        }
    }

    fn record(&mut self, t: f64, deviation: Option<f64>, inside: bool) {
        self.points_compared += 1;
        if let Some(d) = deviation.filter(|d| d.is_finite())
            && self.max_deviation.is_none_or(|m| d > m)
        {
            self.max_deviation = Some(d);
            self.at_time = Some(t);
        }
        if !inside {
            self.points_outside += 1;
            self.first_outside.get_or_insert(t);
        }
    }
}

/// A window of one column of the result file: the rows `[start, start + len)`, reloaded
/// forward as the check walks the time points.
struct Window {
    column: Option<usize>,
    start: u64,
    values: Values,
}

impl Window {
    fn new(column: Option<usize>) -> Window {
        Window {
            column,
            start: 0,
            values: Values::Float(Vec::new()),
        }
    }

    /// Makes `row` readable from the window, reloading from it when it is not.
    fn load(&mut self, file: &ResultFile, row: u64) -> io::Result<usize> {
        let end = self.start + self.values.len() as u64;
        if row < self.start || row >= end {
            self.values = match self.column {
                Some(c) => file.column_values(c, row, WINDOW_ROWS)?,
                None => Values::Float(file.times(row, WINDOW_ROWS)?),
            };
            self.start = row;
            if self.values.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the result has no row {row}"),
                ));
            }
        }
        Ok((row - self.start) as usize)
    }

    fn time(&mut self, file: &ResultFile, row: u64) -> io::Result<f64> {
        let i = self.load(file, row)?;
        Ok(self.values.number(i).unwrap_or(f64::NAN))
    }
}

/// One reference variable being compared: its result column's window and its type.
struct Compared<'a> {
    column: &'a ReferenceColumn,
    window: Window,
    r#type: ValueType,
    variable: Recorded,
    tolerance: Tolerance,
    check: VariableCheck,
}

/// Where a reference time falls in the result.
enum At {
    /// At an event of the result (a time recorded twice): not compared.
    Event,
    /// Exactly at result row `r`.
    Row(u64),
    /// Strictly between rows `r` and `r + 1`, at fraction `f` of the way.
    Between(u64, f64),
    /// Before the result's first time or after its last.
    Outside,
}

/// Compares the result in `file` with `reference`.
pub fn compare(
    file: &ResultFile,
    reference: &Reference,
    tolerances: &Tolerances,
) -> io::Result<ReferenceCheck> {
    let columns = file.element_columns();
    let mut compared = Vec::new();
    let mut unrecorded = Vec::new();
    for column in &reference.columns {
        let tolerance = tolerances.of(&column.name);
        match columns.iter().position(|(name, _)| *name == column.name) {
            Some(c) => compared.push(Compared {
                column,
                window: Window::new(Some(c)),
                r#type: columns[c].1,
                variable: file.column_variable(c).clone(),
                tolerance,
                check: VariableCheck::new(&column.name, tolerance),
            }),
            None => {
                let mut check = VariableCheck::new(&column.name, tolerance);
                check.problem = Some(format!(
                    "the run did not record '{}': ask for it in `outputs`",
                    column.name
                ));
                unrecorded.push(check);
            }
        }
    }
    let rows = file.header().rows;
    let mut times = Window::new(None);
    let mut cursor = 0u64;
    let mut outside_run = 0u64;
    for (i, &t) in reference.time.iter().enumerate() {
        if reference.is_event_row(i) {
            continue;
        }
        let at = locate(file, &mut times, rows, &mut cursor, t)?;
        let at = match at {
            At::Event => continue,
            At::Outside => {
                outside_run += 1;
                continue;
            }
            at => at,
        };
        for c in compared.iter_mut().filter(|c| c.check.problem.is_none()) {
            compare_point(file, c, i, t, &at)?;
        }
    }
    let mut problems = Vec::new();
    if outside_run > 0 {
        problems.push(format!(
            "{outside_run} reference point{} lie outside the run's time span",
            if outside_run == 1 { "" } else { "s" }
        ));
    }
    let mut variables: Vec<VariableCheck> = compared
        .into_iter()
        .map(|c| {
            let mut check = c.check;
            check.passed = check.problem.is_none() && check.points_outside == 0;
            check
        })
        .collect();
    variables.extend(unrecorded);
    // Keep the reference's column order.
    variables.sort_by_key(|v| {
        reference
            .columns
            .iter()
            .position(|c| c.name == v.name)
            .unwrap_or(usize::MAX)
    });
    Ok(ReferenceCheck {
        passed: problems.is_empty() && variables.iter().all(|v| v.passed),
        variables,
        problems,
    })
}

/// Finds where time `t` falls in the result, moving `cursor` (the first row whose time is
/// not before the previous reference time) forward only.
fn locate(
    file: &ResultFile,
    times: &mut Window,
    rows: u64,
    cursor: &mut u64,
    t: f64,
) -> io::Result<At> {
    if rows == 0 {
        return Ok(At::Outside);
    }
    while *cursor < rows
        && times.time(file, *cursor)? < t
        && !same_time(times.time(file, *cursor)?, t)
    {
        *cursor += 1;
    }
    let r = *cursor;
    if r == rows {
        return Ok(At::Outside);
    }
    let tr = times.time(file, r)?;
    if same_time(tr, t) {
        let twice = r + 1 < rows && same_time(times.time(file, r + 1)?, tr);
        return Ok(if twice { At::Event } else { At::Row(r) });
    }
    if r == 0 {
        return Ok(At::Outside);
    }
    let before = times.time(file, r - 1)?;
    Ok(At::Between(r - 1, (t - before) / (tr - before)))
}

/// Compares reference row `i` (time `t`) of one variable with the result at `at`.
fn compare_point(
    file: &ResultFile,
    c: &mut Compared<'_>,
    i: usize,
    t: f64,
    at: &At,
) -> io::Result<()> {
    let cell = c.column.cells[i].trim();
    let (row, next) = match *at {
        At::Row(r) => (r, None),
        At::Between(r, f) => (r, Some(f)),
        At::Event | At::Outside => return Ok(()),
    };
    let bad_cell = |what: &str| Some(format!("reference row {}: '{cell}' is not {what}", i + 2));
    match c.r#type.storage() {
        Storage::Float => {
            let Some(expected) = parse_float(cell) else {
                c.check.problem = bad_cell("a number");
                return Ok(());
            };
            let a = value_number(file, &mut c.window, row)?;
            let value = match next {
                Some(f) => {
                    let b = value_number(file, &mut c.window, row + 1)?;
                    a + f * (b - a)
                }
                None => a,
            };
            let (deviation, inside) = if value.is_finite() && expected.is_finite() {
                (
                    Some((value - expected).abs()),
                    c.tolerance.admits(value, expected),
                )
            } else {
                let same = (value.is_nan() && expected.is_nan()) || value == expected;
                (None, same)
            };
            c.check.record(t, deviation, inside);
        }
        Storage::Int | Storage::UInt | Storage::Bool => {
            let held = held_integer(file, &mut c.window, row)?;
            let expected = match c.r#type {
                ValueType::Boolean => parse_bool(cell).map(i128::from),
                ValueType::Enumeration => cell.parse::<i128>().ok().or_else(|| {
                    c.variable
                        .items
                        .iter()
                        .find(|item| item.name == cell)
                        .map(|item| i128::from(item.value))
                }),
                _ => cell.parse::<i128>().ok(),
            };
            let Some(expected) = expected else {
                c.check.problem = bad_cell(match c.r#type {
                    ValueType::Boolean => "a Boolean",
                    ValueType::Enumeration => "an item of the enumeration",
                    _ => "an integer",
                });
                return Ok(());
            };
            let deviation = (held - expected).unsigned_abs() as f64;
            c.check.record(t, Some(deviation), held == expected);
        }
        Storage::Text => {
            let k = c.window.load(file, row)?;
            let equal = matches!(&c.window.values, Values::Text(v) if v[k] == cell);
            c.check.record(t, None, equal);
        }
        Storage::Bytes => {
            let k = c.window.load(file, row)?;
            let equal = matches!(&c.window.values,
                Values::Bytes(v) if hex::encode(&v[k]).eq_ignore_ascii_case(cell));
            c.check.record(t, None, equal);
        }
    }
    Ok(())
}

fn value_number(file: &ResultFile, window: &mut Window, row: u64) -> io::Result<f64> {
    let k = window.load(file, row)?;
    Ok(window.values.number(k).unwrap_or(f64::NAN))
}

/// An integer, enumeration or Boolean value (as 0 / 1) exactly.
fn held_integer(file: &ResultFile, window: &mut Window, row: u64) -> io::Result<i128> {
    let k = window.load(file, row)?;
    Ok(match &window.values {
        Values::Int(v) => v[k].into(),
        Values::UInt(v) => v[k].into(),
        Values::Bool(v) => i128::from(v[k]),
        _ => 0,
    })
}

/// A float as our CSV and FMPy write them (`nan`, `inf`, `-inf` included).
fn parse_float(cell: &str) -> Option<f64> {
    cell.parse::<f64>().ok()
}

fn parse_bool(cell: &str) -> Option<bool> {
    match cell {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::recorded::{Column, Recorded, write_cells};
    use crate::sim::result_file::Header;

    /// A result file of the given variables and columns (the layout the worker sends).
    fn result(time: &[f64], variables: Vec<Recorded>, columns: Vec<Column>) -> ResultFile {
        let header = Header {
            rows: time.len() as u64,
            variables,
            blob_bytes: crate::sim::recorded::blob_bytes(&columns),
        };
        let mut file = tempfile::tempfile().unwrap();
        header.write(&mut file).unwrap();
        use std::io::Write;
        for t in time {
            file.write_all(&t.to_le_bytes()).unwrap();
        }
        write_cells(&columns, &mut file).unwrap();
        ResultFile::from_file(file).unwrap()
    }

    fn floats(name: &str, time: &[f64], f: impl Fn(f64) -> f64) -> (Recorded, Column) {
        (
            Recorded::scalar(name, ValueType::Float64),
            Column {
                name: name.into(),
                values: Values::Float(time.iter().map(|&t| f(t)).collect()),
            },
        )
    }

    fn grid(n: usize, dt: f64) -> Vec<f64> {
        (0..=n).map(|i| i as f64 * dt).collect()
    }

    fn exp_result(time: &[f64]) -> ResultFile {
        let (v, c) = floats("x", time, |t| (-t).exp());
        result(time, vec![v], vec![c])
    }

    fn csv(time: &[f64], f: impl Fn(f64) -> f64) -> String {
        let mut out = String::from("time,x\n");
        for &t in time {
            out.push_str(&format!("{t},{}\n", f(t)));
        }
        out
    }

    #[test]
    fn a_reference_within_the_band_passes_and_reports_its_largest_deviation() {
        let file = exp_result(&grid(100, 0.01));
        // The reference on a coarser, offset grid: the result is interpolated at its times.
        let times: Vec<f64> = (0..20).map(|i| 0.005 + i as f64 * 0.05).collect();
        let reference = Reference::parse(&csv(&times, |t| (-t).exp())).unwrap();
        let check = compare(&file, &reference, &Tolerances::default()).unwrap();
        assert!(check.passed, "{check:?}");
        let x = &check.variables[0];
        assert_eq!(x.points_compared, 20);
        assert_eq!(x.points_outside, 0);
        // Linear interpolation of exp over 0.01 errs by at most h²/8 · max|x''| ≈ 1.25e-5.
        let max = x.max_deviation.unwrap();
        assert!(max > 0.0 && max < 1.3e-5, "{max}");
        assert_eq!((x.abs_tol, x.rel_tol), (DEFAULT_ABS_TOL, DEFAULT_REL_TOL));
    }

    #[test]
    fn a_reference_outside_the_band_fails_where_it_leaves() {
        let file = exp_result(&grid(100, 0.01));
        let times = grid(10, 0.1);
        // 1 % off from t = 0.5 on.
        let reference = Reference::parse(&csv(&times, |t| {
            (-t).exp() * if t >= 0.5 { 1.01 } else { 1.0 }
        }))
        .unwrap();
        let check = compare(&file, &reference, &Tolerances::default()).unwrap();
        assert!(!check.passed);
        let x = &check.variables[0];
        assert_eq!(x.points_outside, 6);
        assert_eq!(x.first_outside, Some(0.5));
        assert_eq!(x.at_time, Some(0.5));
        assert!((x.max_deviation.unwrap() - 0.01 * (-0.5f64).exp()).abs() < 1e-12);
        // A per-variable tolerance of 2 % lets it pass.
        let loose = Tolerances {
            default: Tolerance::default(),
            by_variable: vec![(
                "x".into(),
                Tolerance {
                    abs_tol: 0.0,
                    rel_tol: 0.02,
                },
            )],
        };
        assert!(compare(&file, &reference, &loose).unwrap().passed);
    }

    #[test]
    fn a_variable_the_run_did_not_record_fails_the_check_by_name() {
        let file = exp_result(&grid(10, 0.1));
        let reference = Reference::parse("time,x,y\n0,1,2\n1,0.36787944117144233,3\n").unwrap();
        let check = compare(&file, &reference, &Tolerances::default()).unwrap();
        assert!(!check.passed);
        assert!(check.variables[0].passed);
        let y = &check.variables[1];
        assert_eq!(y.name, "y");
        assert!(!y.passed);
        assert!(y.problem.as_deref().unwrap().contains("did not record 'y'"));
    }

    #[test]
    fn event_instants_of_either_side_are_skipped() {
        // A result with an event at 0.5 (recorded twice): x jumps from 1 to 2.
        let time = [0.0, 0.25, 0.5, 0.5, 0.75, 1.0];
        let (v, c) = floats("x", &time, |_| 0.0);
        let values = vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0];
        let c = Column {
            values: Values::Float(values),
            ..c
        };
        let file = result(&time, vec![v], vec![c]);
        // The reference has a point at the event (not recorded twice by it): skipped, since
        // the result's value there is either side's.
        let reference = Reference::parse("time,x\n0,1\n0.5,1.5\n1,2\n").unwrap();
        let check = compare(&file, &reference, &Tolerances::default()).unwrap();
        assert!(check.passed, "{check:?}");
        assert_eq!(check.variables[0].points_compared, 2);
        // A reference that records its own event at 0.6 (twice): both rows are skipped, the
        // points beside it compared.
        let reference = Reference::parse("time,x\n0,1\n0.6,7\n0.6,-7\n0.75,2\n").unwrap();
        let check = compare(&file, &reference, &Tolerances::default()).unwrap();
        assert!(check.passed, "{check:?}");
        assert_eq!(check.variables[0].points_compared, 2);
        // Without the event rows doubled, the same point is compared and fails.
        let reference = Reference::parse("time,x\n0,1\n0.6,7\n0.75,2\n").unwrap();
        assert!(
            !compare(&file, &reference, &Tolerances::default())
                .unwrap()
                .passed
        );
    }

    #[test]
    fn discrete_values_are_held_and_compared_exactly() {
        let time = [0.0, 1.0, 2.0];
        let int = Recorded::scalar("n", ValueType::Int64);
        let flag = Recorded::scalar("b", ValueType::Boolean);
        let text = Recorded::scalar("s", ValueType::String);
        let columns = vec![
            Column {
                name: "n".into(),
                values: Values::Int(vec![0, 5, 9_007_199_254_740_993]),
            },
            Column {
                name: "b".into(),
                values: Values::Bool(vec![false, true, true]),
            },
            Column {
                name: "s".into(),
                values: Values::Text(vec!["a".into(), "b, c".into(), "d".into()]),
            },
        ];
        let file = result(&time, vec![int, flag, text], columns);
        // At 1.5 the values of 1.0 hold (not interpolated); 2^53 + 1 compares exactly.
        let good = "time,n,b,s\n0,0,false,a\n1.5,5,true,\"b, c\"\n2,9007199254740993,1,d\n";
        let check = compare(
            &file,
            &Reference::parse(good).unwrap(),
            &Tolerances::default(),
        )
        .unwrap();
        assert!(check.passed, "{check:?}");
        let bad = "time,n,b,s\n0,0,false,a\n1.5,6,false,\"b,c\"\n2,9007199254740992,1,d\n";
        let check = compare(
            &file,
            &Reference::parse(bad).unwrap(),
            &Tolerances::default(),
        )
        .unwrap();
        let outside: Vec<u64> = check.variables.iter().map(|v| v.points_outside).collect();
        assert_eq!(outside, [2, 1, 1]);
        assert_eq!(check.variables[0].first_outside, Some(1.5));
    }

    #[test]
    fn a_reference_that_outlasts_the_run_fails_saying_so() {
        let file = exp_result(&grid(10, 0.1));
        let reference = Reference::parse(&csv(&grid(20, 0.1), |t| (-t).exp())).unwrap();
        let check = compare(&file, &reference, &Tolerances::default()).unwrap();
        assert!(!check.passed);
        assert!(check.variables[0].passed);
        assert_eq!(
            check.problems,
            ["10 reference points lie outside the run's time span"]
        );
    }

    #[test]
    fn malformed_references_are_refused_with_the_row_at_fault() {
        assert_eq!(Reference::parse("t,x\n0,1\n"), Err(ReferenceError::Header));
        assert_eq!(Reference::parse("time\n0\n"), Err(ReferenceError::Header));
        assert_eq!(Reference::parse("time,x\n"), Err(ReferenceError::Empty));
        assert_eq!(
            Reference::parse("time,x,x\n0,1,1\n"),
            Err(ReferenceError::DuplicateColumn("x".into()))
        );
        assert!(matches!(
            Reference::parse("time,x\n1,1\n0,1\n"),
            Err(ReferenceError::Row { row: 3, .. })
        ));
        assert!(matches!(
            Reference::parse("time,x\nnan,1\n"),
            Err(ReferenceError::Row { row: 2, .. })
        ));
        // A name our CSV neutralised against spreadsheet formulas reads back as itself.
        let r = Reference::parse("time,'-x\n0,1\n").unwrap();
        assert_eq!(r.columns[0].name, "-x");
    }

    #[test]
    fn a_cell_that_is_not_of_the_variables_type_is_the_variables_problem() {
        let file = exp_result(&grid(10, 0.1));
        let check = compare(
            &file,
            &Reference::parse("time,x\n0,1\n0.5,abc\n").unwrap(),
            &Tolerances::default(),
        )
        .unwrap();
        assert!(!check.passed);
        assert_eq!(
            check.variables[0].problem.as_deref(),
            Some("reference row 3: 'abc' is not a number")
        );
    }

    #[test]
    fn long_results_are_read_in_windows() {
        // More rows than a window, so the walk reloads; the answer is the same.
        let time = grid(3 * WINDOW_ROWS + 7, 1e-3);
        let file = exp_result(&time);
        let reference = Reference::parse(&csv(&grid(120, 0.1), |t| (-t).exp())).unwrap();
        let check = compare(&file, &reference, &Tolerances::default()).unwrap();
        assert!(check.passed, "{check:?}");
        assert_eq!(check.variables[0].points_compared, 121);
    }
}
