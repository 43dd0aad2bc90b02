//! A run's results on disk, and their conversion to JSON, CSV, MAT and Parquet a chunk at a
//! time.
//!
//! A result file is one JSON header line, `{"format":"fmu-gateway-result/2","rows":N,
//! "variables":[{name,type,shape?,items?}…],"blob_bytes":B}`, followed by the values: `rows`
//! time values (little-endian `f64`), then the cells of each column in order (one column per
//! variable element, [`recorded::element_columns`]; 8 bytes a number or Boolean, 16 a String
//! or Binary: offset and length in the blob), then the blob of String and Binary bytes —
//! exactly what the worker sends after `Done`, so the parent copies it to disk as it arrives
//! and never holds it. Any value is reachable with one positioned read, so JSON (variable by
//! variable) and CSV (row chunks across the columns) are both produced in bounded chunks: the
//! server's memory per download is a chunk, however large the result (up to the engine's
//! cap). Files of the first format (`/1`: Float64 scalars only, no blob) are still read.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::protocol::SimOutput;
use super::recorded::{self, Column, Recorded, Storage, ValueType, Values, element_columns};
use crate::format::{Number, csv_cell, csv_quoted};

/// The `format` of the header line.
const FORMAT: &str = "fmu-gateway-result/2";
/// The first format: Float64 scalars, their names as `columns`.
const FORMAT_V1: &str = "fmu-gateway-result/1";
/// Bytes a chunk of converted output is filled to before it is handed on.
pub const CHUNK_BYTES: usize = 64 << 10;
/// Values read from disk at once.
const READ_VALUES: usize = 8 << 10;
/// Longest a written number can be (`-2.2250738585072014e-308,`): reads are sized by it so
/// a chunk overshoots [`CHUNK_BYTES`] by at most one row (or one long text value).
const MAX_VALUE_BYTES: usize = 25;

/// What a result file holds, from its header line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub rows: u64,
    /// The recorded variables, in the order they were asked for (time is not among them).
    pub variables: Vec<Recorded>,
    /// Bytes of String and Binary values after the cells.
    #[serde(default)]
    pub blob_bytes: u64,
}

#[derive(Serialize)]
struct HeaderLine<'a> {
    format: &'a str,
    #[serde(flatten)]
    header: &'a Header,
}

/// A header line of either format.
#[derive(Deserialize)]
struct AnyHeaderLine {
    format: String,
    rows: u64,
    #[serde(default)]
    variables: Vec<Recorded>,
    #[serde(default)]
    blob_bytes: u64,
    /// The first format's variable names.
    #[serde(default)]
    columns: Vec<String>,
}

impl Header {
    /// Writes the header line.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let line = HeaderLine {
            format: FORMAT,
            header: self,
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")
    }

    /// The header of a result with only Float64 scalars (the first format's).
    pub fn floats(rows: u64, names: &[String]) -> Header {
        Header {
            rows,
            variables: names
                .iter()
                .map(|n| Recorded::scalar(n.clone(), ValueType::Float64))
                .collect(),
            blob_bytes: 0,
        }
    }

    /// Variable names, in order.
    pub fn names(&self) -> Vec<String> {
        self.variables.iter().map(|v| v.name.clone()).collect()
    }
}

/// What a plot of a result draws ([`ResultFile::plot_sample`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PlotSample {
    pub time: Vec<f64>,
    /// Each numeric column by name.
    pub series: Vec<(String, Vec<f64>)>,
    /// The unit of each series (in `series`' order): a plot gives each unit its own y axis.
    pub units: Vec<Option<String>>,
    /// Whether each series (in `series`' order) is of a type that changes only at events
    /// (integers, Booleans, enumerations): a plot draws it as steps.
    pub discrete: Vec<bool>,
    /// The String and Binary columns, which a plot cannot draw.
    pub text: Vec<String>,
}

/// What an interactive plot draws ([`ResultFile::plot_data`]): the numeric columns grouped
/// by unit (one y axis each), each group downsampled on its own ([`super::downsample`]).
/// Serialized as the dashboard's `plot.json`; a value that is not a number (NaN, ±∞) is
/// written as `null`, which the plot draws as a gap.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlotData {
    /// Rows of the whole result.
    pub rows: u64,
    /// Whether rows were left out (every kept one is a real sample).
    pub downsampled: bool,
    pub groups: Vec<PlotGroup>,
}

/// The series of one unit, on their shared time points.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlotGroup {
    /// Left out for unitless values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub time: Vec<f64>,
    pub series: Vec<PlotSeries>,
}

/// One numeric column of a plot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlotSeries {
    pub name: String,
    /// Changes only at events (integers, Booleans, enumerations, discrete floats): drawn as
    /// steps, never as ramps between samples.
    pub discrete: bool,
    /// Numbers as `f64` (Booleans 0 and 1, enumerations by value; an integer beyond 2^53 is
    /// the nearest `f64`, as a plot can only draw that): the downloads keep them exact.
    pub values: Vec<f64>,
}

/// Where one column's cells are.
#[derive(Clone, Debug)]
struct ColumnAt {
    /// The variable it belongs to (an index into the header's variables).
    variable: usize,
    name: String,
    r#type: ValueType,
    /// File offset of its first cell.
    offset: u64,
}

/// An open, checked result file.
#[derive(Debug)]
pub struct ResultFile {
    file: File,
    header: Header,
    /// The element columns, in order (time not among them).
    columns: Vec<ColumnAt>,
    data_start: u64,
    blob_start: u64,
}

/// The formats results are served in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `{"time":[…],"variables":[…],"types":{name:{type,shape?}},"columns":{name:[…]}}`, the
    /// API's `RunResult`: each value in its type (a non-finite float is the string `"NaN"`,
    /// `"Infinity"` or `"-Infinity"`; Binary is hex; an enumeration its item's name), an
    /// array's values nested by its shape.
    Json,
    /// A header `time,<column>,…` (names neutralised against formulas; an array's elements
    /// `y[1]`, `y[2]`, …), then one row per time point, text quoted per RFC 4180.
    Csv,
    /// A MATLAB v4 file in Dymola's result layout ([`super::mat`]): numbers only, a String or
    /// Binary variable or an inexact integer is refused ([`ResultFile::mat_refusal`]).
    Mat,
    /// An Apache Parquet file with a typed column per element ([`super::parquet`]).
    Parquet,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Json, Format::Csv, Format::Mat, Format::Parquet];

    /// The media type a download in this format is sent as.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
            // What MATLAB's own web services send.
            Format::Mat => "application/x-matlab-data",
            // Parquet's registered type (`application/x-parquet` is accepted for it too).
            Format::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The file name extension of a download, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Mat => "mat",
            Format::Parquet => "parquet",
        }
    }

    /// The format a file name's extension names (`out.mat`); `None` for any other.
    pub fn from_extension(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?;
        Format::ALL
            .into_iter()
            .find(|f| f.extension().eq_ignore_ascii_case(extension))
    }
}

fn damaged(why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the result file is damaged: {why}"),
    )
}

impl ResultFile {
    pub fn open(path: &Path) -> io::Result<ResultFile> {
        ResultFile::from_file(File::open(path)?)
    }

    /// Reads and checks the header of a file that is complete (its length must match), from
    /// its start whatever the file's position.
    pub fn from_file(file: File) -> io::Result<ResultFile> {
        (&file).seek(io::SeekFrom::Start(0))?;
        let mut line = Vec::new();
        let limit = super::protocol::MAX_FRAME_BYTES as u64 + 1;
        BufReader::new((&file).take(limit)).read_until(b'\n', &mut line)?;
        if line.last() != Some(&b'\n') {
            return Err(damaged("no header line"));
        }
        let parsed: AnyHeaderLine = serde_json::from_slice(&line).map_err(damaged)?;
        let header = match parsed.format.as_str() {
            FORMAT => Header {
                rows: parsed.rows,
                variables: parsed.variables,
                blob_bytes: parsed.blob_bytes,
            },
            FORMAT_V1 => Header::floats(parsed.rows, &parsed.columns),
            other => return Err(damaged(format!("unknown format {other}"))),
        };
        let data_start = line.len() as u64;
        let mut offset = header
            .rows
            .checked_mul(8)
            .and_then(|b| b.checked_add(data_start))
            .ok_or_else(|| damaged("impossible size"))?;
        let mut columns = Vec::new();
        for (variable, name) in element_columns(&header.variables) {
            let r#type = header.variables[variable].r#type;
            columns.push(ColumnAt {
                variable,
                name,
                r#type,
                offset,
            });
            offset = header
                .rows
                .checked_mul(r#type.cell_bytes())
                .and_then(|b| b.checked_add(offset))
                .ok_or_else(|| damaged("impossible size"))?;
        }
        let blob_start = offset;
        let expected = offset
            .checked_add(header.blob_bytes)
            .ok_or_else(|| damaged("impossible size"))?;
        let actual = file.metadata()?.len();
        if actual != expected {
            return Err(damaged(format!("{actual} bytes, {expected} expected")));
        }
        Ok(ResultFile {
            file,
            header,
            columns,
            data_start,
            blob_start,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Time points × (columns + time): what the file holds.
    pub fn values(&self) -> u64 {
        self.header
            .rows
            .saturating_mul(self.columns.len() as u64 + 1)
    }

    /// Each element column's name and type, in order (time not among them).
    pub fn column_types(&self) -> impl ExactSizeIterator<Item = (&str, ValueType)> + '_ {
        self.columns.iter().map(|at| (at.name.as_str(), at.r#type))
    }

    /// Each element column's name and the variable it belongs to.
    pub fn column_variables(&self) -> impl Iterator<Item = (&str, &Recorded)> + '_ {
        self.columns
            .iter()
            .map(|at| (at.name.as_str(), &self.header.variables[at.variable]))
    }

    /// Up to `n` values of element column `column` from `row` (fewer only for String and
    /// Binary values past a chunk's bytes; at least one while rows remain).
    pub(super) fn read_column(&self, column: usize, row: u64, n: usize) -> io::Result<Values> {
        self.read(column, row, n)
    }

    /// Time values from `row` into `out`.
    pub(super) fn read_time_at(&self, row: u64, out: &mut [f64]) -> io::Result<()> {
        self.read_time(row, out)
    }

    /// The result, ready to be sent in `format`, or the reason it cannot be (a MAT file of a
    /// result with text or an inexact integer: [`ResultFile::mat_refusal`]), found before
    /// anything is sent so a download never stops half-way. The check reads the 64-bit
    /// integer columns, in a blocking task.
    pub async fn checked_for(
        self,
        format: Format,
    ) -> io::Result<Result<ResultFile, super::mat::Unrepresentable>> {
        if format != Format::Mat {
            return Ok(Ok(self));
        }
        let (file, refusal) = tokio::task::spawn_blocking(move || {
            let refusal = self.mat_refusal();
            (self, refusal)
        })
        .await
        .map_err(io::Error::other)?;
        Ok(match refusal? {
            Some(refusal) => Err(refusal),
            None => Ok(file),
        })
    }

    /// Why this result has no MAT file (a String or Binary column, an integer no double
    /// equals), naming the first column at fault; `None` when it has one. Reads the 64-bit
    /// integer columns through, a chunk at a time.
    pub fn mat_refusal(&self) -> io::Result<Option<super::mat::Unrepresentable>> {
        super::mat::first_unrepresentable(self)
    }

    /// The element columns (an array's elements each one), in order, with the type of the
    /// variable each belongs to: what a reader that walks the file column by column (the
    /// reference check) looks columns up in.
    pub fn element_columns(&self) -> Vec<(String, ValueType)> {
        self.columns
            .iter()
            .map(|at| (at.name.clone(), at.r#type))
            .collect()
    }

    /// The recorded variable element column `column` belongs to (its enumeration items).
    pub fn column_variable(&self, column: usize) -> &Recorded {
        &self.header.variables[self.columns[column].variable]
    }

    /// Up to `n` time values from `row` (fewer at the end of the file).
    pub fn times(&self, row: u64, n: usize) -> io::Result<Vec<f64>> {
        let n = (self.header.rows.saturating_sub(row)).min(n as u64) as usize;
        let mut out = vec![0.0; n];
        self.read_time(row, &mut out)?;
        Ok(out)
    }

    /// Up to `n` values of element column `column` from `row` (at least one while rows
    /// remain; fewer at the end of the file or where text would exceed a chunk).
    pub fn column_values(&self, column: usize, row: u64, n: usize) -> io::Result<Values> {
        let n = (self.header.rows.saturating_sub(row)).min(n as u64) as usize;
        self.read(column, row, n)
    }

    /// Time values from `row` into `out`.
    fn read_time(&self, row: u64, out: &mut [f64]) -> io::Result<()> {
        let mut bytes = vec![0u8; out.len() * 8];
        self.file
            .read_exact_at(&mut bytes, self.data_start + row * 8)?;
        for (v, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
            *v = f64::from_le_bytes(b.try_into().expect("chunks of 8"));
        }
        Ok(())
    }

    /// Up to `n` values of element column `column` from `row` (at least one if `n` > 0 and
    /// rows remain): fewer where String or Binary values would exceed a chunk's bytes.
    fn read(&self, column: usize, row: u64, n: usize) -> io::Result<Values> {
        let at = &self.columns[column];
        let cell = at.r#type.cell_bytes();
        let mut bytes = vec![0u8; n * cell as usize];
        self.file
            .read_exact_at(&mut bytes, at.offset + row * cell)?;
        let words = bytes
            .chunks_exact(8)
            .map(|b| <[u8; 8]>::try_from(b).expect("chunks of 8"));
        Ok(match at.r#type.storage() {
            Storage::Float => Values::Float(words.map(f64::from_le_bytes).collect()),
            Storage::Int => Values::Int(words.map(i64::from_le_bytes).collect()),
            Storage::UInt => Values::UInt(words.map(u64::from_le_bytes).collect()),
            Storage::Bool => Values::Bool(
                words
                    .map(|w| match u64::from_le_bytes(w) {
                        0 => Ok(false),
                        1 => Ok(true),
                        other => Err(damaged(format!("{other} in Boolean column '{}'", at.name))),
                    })
                    .collect::<io::Result<_>>()?,
            ),
            storage => {
                let words: Vec<u64> = words.map(u64::from_le_bytes).collect();
                let parts = self.read_blob(&at.name, &words)?;
                if storage == Storage::Bytes {
                    Values::Bytes(parts)
                } else {
                    Values::Text(
                        parts
                            .into_iter()
                            .map(|p| {
                                String::from_utf8(p).map_err(|_| {
                                    damaged(format!("text in '{}' is not UTF-8", at.name))
                                })
                            })
                            .collect::<io::Result<_>>()?,
                    )
                }
            }
        })
    }

    /// The blob slices that (offset, length) pairs name, as many as fit in a chunk (at least
    /// one).
    fn read_blob(&self, column: &str, pairs: &[u64]) -> io::Result<Vec<Vec<u8>>> {
        let mut parts = Vec::new();
        let mut taken = 0u64;
        for pair in pairs.chunks_exact(2) {
            let (offset, len) = (pair[0], pair[1]);
            if offset
                .checked_add(len)
                .is_none_or(|end| end > self.header.blob_bytes)
            {
                return Err(damaged(format!(
                    "a value of '{column}' lies outside the file"
                )));
            }
            if !parts.is_empty() && taken + len > CHUNK_BYTES as u64 {
                break;
            }
            let mut part = vec![0u8; len as usize];
            self.file
                .read_exact_at(&mut part, self.blob_start + offset)?;
            taken += len;
            parts.push(part);
        }
        Ok(parts)
    }

    /// Reads every Boolean, String and Binary value once, so a file whose values no reader
    /// could serve is found when it is stored, not when it is downloaded. Numbers need no
    /// check (every bit pattern is a value).
    pub fn check_values(&self) -> io::Result<()> {
        for (c, at) in self.columns.iter().enumerate() {
            let range = at.r#type.int_range();
            let float32 = at.r#type == ValueType::Float32;
            if range.is_none()
                && !float32
                && matches!(
                    at.r#type.storage(),
                    Storage::Float | Storage::Int | Storage::UInt
                )
            {
                continue;
            }
            let mut row = 0;
            while row < self.header.rows {
                let n = (self.header.rows - row).min(READ_VALUES as u64) as usize;
                let values = self.read(c, row, n)?;
                // A cell is 64 bits wide: an Int8 of 300, or a Float32 no f32 equals, is not
                // a value of its type, and no reader may print it as one.
                let outside = match (&values, range) {
                    (Values::Int(v), Some((lo, hi))) => {
                        v.iter().find(|&&x| x < lo || x > hi).map(|x| x.to_string())
                    }
                    (Values::Float(v), _) if float32 => v
                        .iter()
                        .find(|&&x| !x.is_nan() && f64::from(x as f32) != x)
                        .map(|x| x.to_string()),
                    _ => None,
                };
                if let Some(x) = outside {
                    return Err(damaged(format!(
                        "{x} in {} is not a {:?} value",
                        at.name, at.r#type
                    )));
                }
                row += values.len().max(1) as u64;
            }
        }
        Ok(())
    }

    /// The last value of each numeric column (Booleans as 0 and 1); String and Binary
    /// columns have no number and are not listed. None for a result without rows.
    pub fn last_values(&self) -> io::Result<Vec<(String, f64)>> {
        let Some(last) = self.header.rows.checked_sub(1) else {
            return Ok(vec![]);
        };
        let mut out = Vec::with_capacity(self.columns.len());
        for (i, at) in self.columns.iter().enumerate() {
            if let Some(v) = self.read(i, last, 1)?.number(0) {
                out.push((at.name.clone(), v));
            }
        }
        Ok(out)
    }

    /// Every `stride`-th row (and the last one), at most about `max_rows` of them: enough for a
    /// plot without loading a large result.
    pub fn sampled(&self, max_rows: u64) -> io::Result<SimOutput> {
        let (time, columns) = self.sample(max_rows, |_| true)?;
        Ok(SimOutput {
            time,
            variables: self.header.variables.clone(),
            columns,
            log: String::new(),
            final_state: None,
        })
    }

    /// What a plot draws: the numeric columns sampled as [`ResultFile::sampled`] samples, as
    /// numbers (Booleans 0 and 1, enumerations by value). String and Binary columns are only
    /// named, never read: a plot cannot draw them, and their bytes could be large.
    pub fn plot_sample(&self, max_rows: u64) -> io::Result<PlotSample> {
        let numeric = |at: &ColumnAt| at.r#type.is_numeric();
        let (time, columns) = self.sample(max_rows, numeric)?;
        let plotted = || self.columns.iter().filter(|at| numeric(at));
        Ok(PlotSample {
            units: plotted()
                .map(|at| self.header.variables[at.variable].unit.clone())
                .collect(),
            discrete: plotted()
                .map(|at| at.r#type.storage() != Storage::Float)
                .collect(),
            time,
            series: columns
                .into_iter()
                .filter_map(|c| Some((c.name, c.values.numbers()?)))
                .collect(),
            text: self
                .columns
                .iter()
                .filter(|at| !numeric(at))
                .map(|at| at.name.clone())
                .collect(),
        })
    }

    /// The numeric columns named in `wanted` (all of them when `None`; a name is a column's
    /// or its array variable's) grouped by unit and downsampled to `width` pixel columns,
    /// keeping each column's extremes. `discrete_floats` names the float variables the model
    /// declares discrete (every other type is discrete by its type). Reads one column at a
    /// time, twice (once to choose the rows, once to take them): memory is the time column
    /// and one column, however many columns the result has.
    pub fn plot_data(
        &self,
        wanted: Option<&[String]>,
        discrete_floats: &[String],
        width: usize,
    ) -> io::Result<PlotData> {
        let rows = self.header.rows;
        let mut time = vec![0.0; rows as usize];
        self.read_time(0, &mut time)?;
        let base = super::downsample::RowPicker::new(&time, width);
        let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
        for (c, at) in self.columns.iter().enumerate() {
            let variable = &self.header.variables[at.variable];
            let chosen =
                wanted.is_none_or(|w| w.iter().any(|n| *n == at.name || *n == variable.name));
            if !at.r#type.is_numeric() || !chosen {
                continue;
            }
            let unit = variable.unit.as_deref();
            match groups.iter_mut().find(|(u, _)| *u == unit) {
                Some((_, columns)) => columns.push(c),
                None => groups.push((unit, vec![c])),
            }
        }
        let numbers = |c: usize| -> io::Result<Vec<f64>> {
            Ok(match self.read(c, 0, rows as usize)? {
                Values::Float(v) => v,
                other => other.numbers().unwrap_or_default(),
            })
        };
        let mut out = Vec::with_capacity(groups.len());
        for (unit, columns) in groups {
            let mut picker = base.clone();
            if !picker.is_exact() {
                for &c in &columns {
                    picker.mark(&numbers(c)?);
                }
            }
            let kept = picker.rows();
            let mut series = Vec::with_capacity(columns.len());
            for &c in &columns {
                let at = &self.columns[c];
                let all = numbers(c)?;
                let variable = &self.header.variables[at.variable].name;
                series.push(PlotSeries {
                    name: at.name.clone(),
                    discrete: at.r#type.storage() != Storage::Float
                        || discrete_floats.contains(variable),
                    values: kept.iter().map(|&r| all[r]).collect(),
                });
            }
            out.push(PlotGroup {
                unit: unit.map(str::to_owned),
                time: kept.iter().map(|&r| time[r]).collect(),
                series,
            });
        }
        Ok(PlotData {
            rows,
            downsampled: !base.is_exact(),
            groups: out,
        })
    }

    /// The sampled time points and the sampled columns that `include` picks.
    fn sample(
        &self,
        max_rows: u64,
        include: impl Fn(&ColumnAt) -> bool,
    ) -> io::Result<(Vec<f64>, Vec<Column>)> {
        let rows = self.header.rows;
        let stride = rows.div_ceil(max_rows.max(1)).max(1);
        let picked: Vec<u64> = (0..rows)
            .step_by(stride as usize)
            .chain((rows > 0 && !(rows - 1).is_multiple_of(stride)).then(|| rows - 1))
            .collect();
        let mut time = vec![0.0; picked.len()];
        if stride == 1 {
            self.read_time(0, &mut time)?;
        } else {
            for (t, &r) in time.iter_mut().zip(&picked) {
                self.read_time(r, std::slice::from_mut(t))?;
            }
        }
        let mut columns = Vec::with_capacity(self.columns.len());
        for (c, at) in self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, at)| include(at))
        {
            let mut values = Values::new(at.r#type.storage(), picked.len());
            let mut i = 0;
            while i < picked.len() {
                // Consecutive rows are read together; picked rows apart one at a time.
                let n = if stride == 1 { picked.len() - i } else { 1 };
                let got = self.read(c, picked[i], n)?;
                i += got.len().max(1);
                append(&mut values, got);
            }
            columns.push(Column {
                name: at.name.clone(),
                values,
            });
        }
        Ok((time, columns))
    }

    /// The whole result in memory: for small results only (the inline answer, the start-up
    /// self-test, tests).
    pub fn read_all(&self) -> io::Result<SimOutput> {
        self.sampled(self.header.rows)
    }

    /// Writes the result in `format` to `out`, a chunk at a time.
    pub fn write_to(&self, format: Format, out: &mut impl Write) -> io::Result<()> {
        let mut cursor = Cursor::new(format);
        let mut buf = Vec::with_capacity(CHUNK_BYTES + 1024);
        loop {
            let more = cursor.next(self, &mut buf)?;
            out.write_all(&buf)?;
            buf.clear();
            if !more {
                return out.flush();
            }
        }
    }

    /// The result in `format` as a stream of chunks produced as the reader takes them (the
    /// faces send it as an HTTP body): each chunk is made by a short blocking task, so a slow
    /// client holds one chunk of memory and no thread.
    pub fn into_stream(
        self,
        format: Format,
    ) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static {
        let file = Arc::new(self);
        futures_util::stream::try_unfold((Cursor::new(format), true), move |(cursor, more)| {
            let file = Arc::clone(&file);
            async move {
                if !more {
                    return Ok(None);
                }
                let (cursor, chunk, more) = tokio::task::spawn_blocking(move || {
                    let mut cursor = cursor;
                    let mut buf = Vec::with_capacity(CHUNK_BYTES + 1024);
                    let more = cursor.next(&file, &mut buf)?;
                    Ok::<_, io::Error>((cursor, buf, more))
                })
                .await
                .map_err(io::Error::other)??;
                Ok::<_, io::Error>(Some((Bytes::from(chunk), (cursor, more))))
            }
        })
    }

    /// Converts a result stored by earlier versions (one JSON document `[time, [{name,
    /// values}…]]`) into a result file at `dest` (written beside it and renamed into place).
    /// Reads the old file whole, as its writer did.
    pub fn convert_legacy(legacy: &Path, dest: &Path) -> io::Result<()> {
        #[derive(Deserialize)]
        struct LegacyColumn {
            name: String,
            values: Vec<Option<f64>>,
        }
        let text = std::fs::read(legacy)?;
        let (time, columns): (Vec<Option<f64>>, Vec<LegacyColumn>) =
            serde_json::from_slice(&text).map_err(damaged)?;
        drop(text);
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let header = Header::floats(time.len() as u64, &names);
        if columns.iter().any(|c| c.values.len() != time.len()) {
            return Err(damaged("a column has a different length than time"));
        }
        let tmp = dest.with_extension("converting");
        let mut out = io::BufWriter::new(File::create(&tmp)?);
        header.write(&mut out)?;
        for values in std::iter::once(&time).chain(columns.iter().map(|c| &c.values)) {
            for v in values {
                // serde_json wrote non-finite values as null.
                out.write_all(&v.unwrap_or(f64::NAN).to_le_bytes())?;
            }
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, dest)
    }
}

/// Appends `more` to `values` (both of one storage).
fn append(values: &mut Values, more: Values) {
    match (values, more) {
        (Values::Float(a), Values::Float(b)) => a.extend(b),
        (Values::Int(a), Values::Int(b)) => a.extend(b),
        (Values::UInt(a), Values::UInt(b)) => a.extend(b),
        (Values::Bool(a), Values::Bool(b)) => a.extend(b),
        (Values::Text(a), Values::Text(b)) => a.extend(b),
        (Values::Bytes(a), Values::Bytes(b)) => a.extend(b),
        _ => unreachable!("a column is read in its own storage"),
    }
}

/// Writes `count` values from `values[first..]` nested by `shape` (row-major): `[[a,b],[c,d]]`.
fn write_nested(
    variable: &Recorded,
    shape: &[u64],
    elements: &[Values],
    first: usize,
    row: usize,
    buf: &mut Vec<u8>,
) {
    buf.push(b'[');
    match shape {
        [] => {}
        [n] => {
            for e in 0..*n as usize {
                if e > 0 {
                    buf.push(b',');
                }
                recorded::write_json(variable, &elements[first + e], row, buf);
            }
        }
        [n, rest @ ..] => {
            let block: u64 = rest.iter().product();
            for i in 0..*n as usize {
                if i > 0 {
                    buf.push(b',');
                }
                let start = first + i * block as usize;
                write_nested(variable, rest, elements, start, row, buf);
            }
        }
    }
    buf.push(b']');
}

/// Where a conversion has got to; [`Cursor::next`] appends the next chunk.
#[derive(Debug)]
enum Cursor {
    Json(TextCursor),
    Csv(TextCursor),
    Mat(super::mat::MatCursor),
    Parquet(Box<super::parquet::ParquetCursor>),
}

impl Cursor {
    fn new(format: Format) -> Cursor {
        match format {
            Format::Json => Cursor::Json(TextCursor::default()),
            Format::Csv => Cursor::Csv(TextCursor::default()),
            Format::Mat => Cursor::Mat(Default::default()),
            Format::Parquet => Cursor::Parquet(Default::default()),
        }
    }

    /// Appends about [`CHUNK_BYTES`] of output to `buf` (a Parquet row group); `false` once
    /// it is all written.
    fn next(&mut self, file: &ResultFile, buf: &mut Vec<u8>) -> io::Result<bool> {
        match self {
            Cursor::Json(text) => text.next_json(file, buf),
            Cursor::Csv(text) => text.next_csv(file, buf),
            Cursor::Mat(mat) => mat.next(file, buf),
            Cursor::Parquet(parquet) => parquet.next(file, buf),
        }
    }
}

/// Where a JSON or CSV conversion has got to.
#[derive(Debug, Default)]
struct TextCursor {
    started: bool,
    /// JSON: 0 is time, then the variables (1-based); past the last, finished.
    variable: usize,
    /// JSON: the first element column of the current variable.
    column: usize,
    row: u64,
}

impl TextCursor {
    /// Rows to read for a chunk whose rows take about `row_bytes` each.
    fn rows_for(&self, file: &ResultFile, buf: &[u8], row_bytes: usize) -> usize {
        let room = CHUNK_BYTES.saturating_sub(buf.len()) / row_bytes.max(1);
        let left = file.header.rows - self.row;
        left.min(room.clamp(1, READ_VALUES) as u64) as usize
    }

    fn next_json(&mut self, file: &ResultFile, buf: &mut Vec<u8>) -> io::Result<bool> {
        let header = &file.header;
        if !self.started {
            buf.extend_from_slice(b"{\"time\":[");
            self.started = true;
        }
        let mut number = ryu::Buffer::new();
        while buf.len() < CHUNK_BYTES {
            if self.row < header.rows {
                if self.variable == 0 {
                    let n = self.rows_for(file, buf, MAX_VALUE_BYTES);
                    let mut time = vec![0.0; n];
                    file.read_time(self.row, &mut time)?;
                    for (i, t) in time.iter().enumerate() {
                        if self.row + i as u64 > 0 {
                            buf.push(b',');
                        }
                        buf.extend_from_slice(number.format_finite(*t).as_bytes());
                    }
                    self.row += n as u64;
                } else {
                    self.json_rows(file, buf)?;
                }
                continue;
            }
            buf.push(b']');
            if self.variable == 0 {
                buf.extend_from_slice(b",\"variables\":");
                serde_json::to_writer(&mut *buf, &header.names())?;
                buf.extend_from_slice(b",\"types\":{");
                for (i, v) in header.variables.iter().enumerate() {
                    if i > 0 {
                        buf.push(b',');
                    }
                    serde_json::to_writer(&mut *buf, &v.name)?;
                    buf.extend_from_slice(b":{\"type\":");
                    serde_json::to_writer(&mut *buf, &v.r#type)?;
                    if !v.shape.is_empty() {
                        buf.extend_from_slice(b",\"shape\":");
                        serde_json::to_writer(&mut *buf, &v.shape)?;
                    }
                    if let Some(unit) = &v.unit {
                        buf.extend_from_slice(b",\"unit\":");
                        serde_json::to_writer(&mut *buf, unit)?;
                    }
                    buf.push(b'}');
                }
                buf.extend_from_slice(b"},\"columns\":{");
            } else {
                self.column += header.variables[self.variable - 1].elements().unwrap_or(0) as usize;
            }
            self.variable += 1;
            self.row = 0;
            let Some(variable) = header.variables.get(self.variable - 1) else {
                buf.extend_from_slice(b"}}");
                return Ok(false);
            };
            if self.variable > 1 {
                buf.push(b',');
            }
            serde_json::to_writer(&mut *buf, &variable.name)?;
            buf.extend_from_slice(b":[");
        }
        Ok(true)
    }

    /// The next rows of the current variable, as values (scalar) or nested arrays.
    fn json_rows(&mut self, file: &ResultFile, buf: &mut Vec<u8>) -> io::Result<()> {
        let variable = &file.header.variables[self.variable - 1];
        let count = variable.elements().unwrap_or(0) as usize;
        let n = self.rows_for(file, buf, MAX_VALUE_BYTES * count.max(1));
        let mut elements = Vec::with_capacity(count);
        let mut got = n;
        for e in 0..count {
            let values = file.read(self.column + e, self.row, got)?;
            got = got.min(values.len());
            elements.push(values);
        }
        for r in 0..got {
            if self.row + r as u64 > 0 {
                buf.push(b',');
            }
            if variable.shape.is_empty() {
                recorded::write_json(variable, &elements[0], r, buf);
            } else {
                write_nested(variable, &variable.shape, &elements, 0, r, buf);
            }
        }
        self.row += got.max(1) as u64;
        Ok(())
    }

    fn next_csv(&mut self, file: &ResultFile, buf: &mut Vec<u8>) -> io::Result<bool> {
        let header = &file.header;
        let width = file.columns.len() + 1;
        if !self.started {
            buf.extend_from_slice(b"time");
            for at in &file.columns {
                buf.push(b',');
                buf.extend_from_slice(csv_quoted(&csv_cell(&at.name)).as_bytes());
            }
            buf.push(b'\n');
            self.started = true;
        }
        while buf.len() < CHUNK_BYTES && self.row < header.rows {
            let n = self.rows_for(file, buf, MAX_VALUE_BYTES * width);
            let n = n.min((READ_VALUES / width).max(1));
            let mut time = vec![0.0; n];
            file.read_time(self.row, &mut time)?;
            let mut got = n;
            let mut columns = Vec::with_capacity(file.columns.len());
            for c in 0..file.columns.len() {
                let values = file.read(c, self.row, got)?;
                got = got.min(values.len());
                columns.push(values);
            }
            for (r, t) in time.iter().enumerate().take(got) {
                write!(buf, "{}", Number(*t))?;
                for (at, values) in file.columns.iter().zip(&columns) {
                    buf.push(b',');
                    recorded::write_csv(&header.variables[at.variable], values, r, buf);
                }
                buf.push(b'\n');
            }
            self.row += got.max(1) as u64;
        }
        Ok(self.row < header.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(time: &[f64], columns: &[(&str, &[f64])]) -> (tempfile::TempDir, ResultFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.result");
        let mut out = File::create(&path).unwrap();
        let names: Vec<String> = columns.iter().map(|(n, _)| n.to_string()).collect();
        Header::floats(time.len() as u64, &names)
            .write(&mut out)
            .unwrap();
        for values in std::iter::once(time).chain(columns.iter().map(|(_, v)| *v)) {
            for v in values {
                out.write_all(&v.to_le_bytes()).unwrap();
            }
        }
        drop(out);
        let file = ResultFile::open(&path).unwrap();
        (dir, file)
    }

    fn text(file: &ResultFile, format: Format) -> String {
        let mut out = Vec::new();
        file.write_to(format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_has_shortest_numbers_and_neutralised_names() {
        let (_dir, file) = stored(
            &[0.0, 0.5, 1.0],
            &[
                ("h", &[1.0, 2.47e-321, -2.5]),
                ("=HYPERLINK(\"x\")", &[1e300, f64::NAN, -0.0]),
            ],
        );
        assert_eq!(
            text(&file, Format::Csv),
            "time,h,\"'=HYPERLINK(\"\"x\"\")\"\n0,1,1e300\n0.5,2.47e-321,nan\n1,-2.5,-0\n"
        );
    }

    #[test]
    fn json_matches_the_api_shape_and_serde_json_numbers() {
        let (_dir, file) = stored(
            &[0.0, 0.5],
            &[("h", &[1.0, 2.47e-321]), ("v", &[f64::INFINITY, -3.0])],
        );
        let json = text(&file, Format::Json);
        assert_eq!(
            json,
            r#"{"time":[0.0,0.5],"variables":["h","v"],"types":{"h":{"type":"float64"},"v":{"type":"float64"}},"columns":{"h":[1.0,2.47e-321],"v":["Infinity",-3.0]}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["columns"]["h"][1], serde_json::json!(2.47e-321));
    }

    /// NaN and ±∞ are kept in the file and written by name in both formats: JSON strings
    /// (JSON has no such numbers) and CSV as FMPy writes them.
    #[test]
    fn non_finite_values_are_written_by_name() {
        let (_dir, file) = stored(
            &[0.0, 1.0, 2.0],
            &[("x", &[f64::NAN, f64::INFINITY, f64::NEG_INFINITY])],
        );
        assert_eq!(
            text(&file, Format::Json),
            r#"{"time":[0.0,1.0,2.0],"variables":["x"],"types":{"x":{"type":"float64"}},"columns":{"x":["NaN","Infinity","-Infinity"]}}"#
        );
        assert_eq!(text(&file, Format::Csv), "time,x\n0,nan\n1,inf\n2,-inf\n");
        let all = file.read_all().unwrap();
        let back = all.columns[0].values.as_floats().unwrap();
        assert!(back[0].is_nan() && back[1] == f64::INFINITY && back[2] == f64::NEG_INFINITY);
    }

    #[test]
    fn large_results_come_in_bounded_chunks_that_add_up() {
        let rows = 50_000;
        let time: Vec<f64> = (0..rows).map(|i| i as f64 * 1e-3).collect();
        let x: Vec<f64> = time.iter().map(|t| t.sin()).collect();
        let (_dir, file) = stored(&time, &[("x", &x)]);
        for format in [Format::Json, Format::Csv] {
            let mut cursor = Cursor::new(format);
            let (mut all, mut chunks) = (Vec::new(), 0);
            loop {
                let mut buf = Vec::new();
                let more = cursor.next(&file, &mut buf).unwrap();
                assert!(buf.len() < CHUNK_BYTES + 8 * 1024, "{} bytes", buf.len());
                all.extend_from_slice(&buf);
                chunks += 1;
                if !more {
                    break;
                }
            }
            assert!(chunks > 5, "{format:?}: {chunks} chunks");
            let text = String::from_utf8(all).unwrap();
            match format {
                Format::Json => {
                    assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok());
                    // Read back exactly (serde_json's own float parsing is not exact).
                    let array = text.split("\"x\":[").nth(1).unwrap();
                    let array = array.strip_suffix("]}}").unwrap();
                    let back: Vec<f64> = array.split(',').map(|v| v.parse().unwrap()).collect();
                    assert!(back == x, "the values did not round-trip");
                }
                Format::Csv => {
                    assert_eq!(text.lines().count(), rows + 1);
                    let last = text.lines().last().unwrap();
                    assert_eq!(
                        last,
                        format!("{},{}", Number(time[rows - 1]), Number(x[rows - 1]))
                    );
                }
                Format::Mat | Format::Parquet => unreachable!("only the text formats here"),
            }
        }
    }

    /// A MAT file is written a few time points at a time: `data_2` holds, time point after
    /// time point, the time and each value (Dymola's "binTrans"), chunks stay bounded, and the
    /// file ends exactly after the last value.
    #[test]
    fn mat_files_come_in_bounded_chunks_time_point_after_time_point() {
        let rows = 50_000;
        let time: Vec<f64> = (0..rows).map(|i| i as f64 * 1e-3).collect();
        let x: Vec<f64> = time.iter().map(|t| t.sin()).collect();
        let (_dir, file) = stored(&time, &[("x", &x)]);
        assert_eq!(file.mat_refusal().unwrap(), None);
        let mut cursor = Cursor::new(Format::Mat);
        let (mut all, mut chunks) = (Vec::new(), 0);
        loop {
            let mut buf = Vec::new();
            let more = cursor.next(&file, &mut buf).unwrap();
            assert!(buf.len() < CHUNK_BYTES + 64 * 1024, "{} bytes", buf.len());
            all.extend_from_slice(&buf);
            chunks += 1;
            if !more {
                break;
            }
        }
        assert!(chunks > 5, "{chunks} chunks");
        let data = &all[all.len() - rows * 16..];
        let header_at = all.len() - rows * 16 - 20 - "data_2\0".len();
        let header: Vec<i32> = all[header_at..header_at + 20]
            .chunks(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(
            header,
            [0, 2, rows as i32, 0, 7],
            "double, 2 × rows, \"data_2\""
        );
        for (r, pair) in data.chunks(16).enumerate() {
            let t = f64::from_le_bytes(pair[..8].try_into().unwrap());
            let v = f64::from_le_bytes(pair[8..].try_into().unwrap());
            assert!(t == time[r] && v == x[r], "row {r}");
        }
    }

    /// Parquet comes a row group at a time (65,536 rows at most), and reads back exactly.
    #[test]
    fn parquet_files_come_a_row_group_at_a_time_and_read_back_exactly() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::RowAccessor;
        let rows = 150_000;
        let time: Vec<f64> = (0..rows).map(|i| i as f64 * 1e-3).collect();
        let x: Vec<f64> = time.iter().map(|t| t.sin()).collect();
        let (_dir, file) = stored(&time, &[("x", &x)]);
        let mut cursor = Cursor::new(Format::Parquet);
        let (mut all, mut chunks) = (Vec::new(), 0);
        loop {
            let mut buf = Vec::new();
            let more = cursor.next(&file, &mut buf).unwrap();
            assert!(
                buf.len() < 2 * 65_536 * 8 + (1 << 20),
                "{} bytes",
                buf.len()
            );
            all.extend_from_slice(&buf);
            chunks += 1;
            if !more {
                break;
            }
        }
        assert_eq!(chunks, 4, "three row groups and the footer");
        let reader = SerializedFileReader::new(Bytes::from(all)).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 3);
        let mut back = Vec::new();
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            back.push((row.get_double(0).unwrap(), row.get_double(1).unwrap()));
        }
        assert_eq!(back.len(), rows);
        assert!(
            back.iter()
                .zip(time.iter().zip(&x))
                .all(|((t, v), (t0, x0))| t == t0 && v == x0)
        );
    }

    #[test]
    fn last_values_samples_and_empty_results() {
        let (_dir, file) = stored(
            &[0.0, 1.0, 2.0, 3.0, 4.0],
            &[("a", &[5.0, 6.0, 7.0, 8.0, 9.0])],
        );
        assert_eq!(file.last_values().unwrap(), vec![("a".to_string(), 9.0)]);
        let sample = file.sampled(2).unwrap();
        assert_eq!(sample.time, vec![0.0, 3.0, 4.0]);
        assert_eq!(sample.columns[0].values, Values::Float(vec![5.0, 8.0, 9.0]));
        assert_eq!(file.read_all().unwrap().time.len(), 5);

        let (_dir, empty) = stored(&[], &[("a", &[])]);
        assert!(empty.last_values().unwrap().is_empty());
        assert_eq!(
            text(&empty, Format::Json),
            r#"{"time":[],"variables":["a"],"types":{"a":{"type":"float64"}},"columns":{"a":[]}}"#
        );
        assert_eq!(text(&empty, Format::Csv), "time,a\n");
        // Every format has a file for no rows: MAT's data_1 and data_2 are empty.
        let mut mat = Vec::new();
        empty.write_to(Format::Mat, &mut mat).unwrap();
        assert!(mat.ends_with(b"data_2\0"), "{mat:?}");
        let mut parquet = Vec::new();
        empty.write_to(Format::Parquet, &mut parquet).unwrap();
        assert!(parquet.starts_with(b"PAR1") && parquet.ends_with(b"PAR1"));
    }

    #[test]
    fn damaged_files_are_refused() {
        let (dir, _file) = stored(&[0.0, 1.0], &[("a", &[1.0, 2.0])]);
        let path = dir.path().join("r.result");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let e = ResultFile::open(&path).unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
        std::fs::write(&path, b"{\"format\":\"other\",\"rows\":0,\"columns\":[]}\n").unwrap();
        assert!(ResultFile::open(&path).is_err());
        std::fs::write(&path, b"no newline").unwrap();
        assert!(ResultFile::open(&path).is_err());
    }

    /// Booleans that are not 0 or 1, and text outside the blob or not UTF-8, are found by
    /// `check_values` (which the runner calls before it keeps a result), not served.
    #[test]
    fn values_no_reader_could_serve_are_found_before_they_are_kept() {
        use crate::sim::recorded::Recorded;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.result");
        let write = |r#type: ValueType, cells: &[u64], blob: &[u8]| {
            let mut out = File::create(&path).unwrap();
            Header {
                rows: 1,
                variables: vec![Recorded::scalar("x", r#type)],
                blob_bytes: blob.len() as u64,
            }
            .write(&mut out)
            .unwrap();
            out.write_all(&0.0f64.to_le_bytes()).unwrap();
            for c in cells {
                out.write_all(&c.to_le_bytes()).unwrap();
            }
            out.write_all(blob).unwrap();
            ResultFile::open(&path).unwrap()
        };
        assert!(write(ValueType::Boolean, &[1], b"").check_values().is_ok());
        assert!(
            write(ValueType::String, &[0, 2], b"ok")
                .check_values()
                .is_ok()
        );
        for (r#type, cells, blob) in [
            (ValueType::Boolean, vec![7], &b""[..]),
            (ValueType::String, vec![1, 2], &b"ok"[..]),
            (ValueType::String, vec![u64::MAX, 2], &b"ok"[..]),
            (ValueType::String, vec![0, 2], &b"\xff\xfe"[..]),
            (ValueType::Binary, vec![0, 3], &b"ok"[..]),
        ] {
            let file = write(r#type, &cells, blob);
            let e = file.check_values().unwrap_err();
            assert!(e.to_string().contains("damaged"), "{type:?} {cells:?}: {e}");
            assert!(file.write_to(Format::Json, &mut Vec::new()).is_err());
        }
        // A 64-bit cell holding what its narrower type cannot (found by fuzzing: a worker's
        // Int32 of 1.5's bits would have been printed as 4609434218613702656).
        assert!(
            write(ValueType::Int8, &[(-128i64) as u64], b"")
                .check_values()
                .is_ok()
        );
        assert!(
            write(ValueType::Float32, &[0.5f64.to_bits()], b"")
                .check_values()
                .is_ok()
        );
        for (r#type, cell) in [
            (ValueType::Int8, 128u64),
            (ValueType::UInt8, (-1i64) as u64),
            (ValueType::Int32, 1.5f64.to_bits()),
            (ValueType::UInt32, 1 << 32),
            (ValueType::Float32, 0.1f64.to_bits()),
        ] {
            let e = write(r#type, &[cell], b"").check_values().unwrap_err();
            assert!(
                e.to_string().contains(&format!("is not a {type:?} value")),
                "{type:?}: {e}"
            );
        }
    }

    /// A plot gets the numeric columns as numbers and only the names of the text ones, whose
    /// bytes it never reads (here they point outside the blob and would fail a read).
    #[test]
    fn a_plot_sample_reads_numbers_and_only_names_text() {
        use crate::sim::recorded::Recorded;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.result");
        let mut out = File::create(&path).unwrap();
        Header {
            rows: 2,
            variables: vec![
                Recorded::scalar("on", ValueType::Boolean),
                Recorded::scalar("s", ValueType::String),
            ],
            blob_bytes: 0,
        }
        .write(&mut out)
        .unwrap();
        for word in [0u64.to_le_bytes(), 1f64.to_bits().to_le_bytes()] {
            out.write_all(&word).unwrap(); // time 0, 1
        }
        for word in [0u64, 1, 99, 1, 99, 1] {
            out.write_all(&word.to_le_bytes()).unwrap(); // on: false, true; s: out of the blob
        }
        drop(out);
        let file = ResultFile::open(&path).unwrap();
        let sample = file.plot_sample(10).unwrap();
        assert_eq!(sample.time, vec![0.0, 1.0]);
        assert_eq!(sample.series, vec![("on".to_string(), vec![0.0, 1.0])]);
        assert_eq!(sample.text, vec!["s".to_string()]);
        assert!(file.sampled(10).is_err(), "reading the text would fail");
    }

    #[test]
    fn legacy_json_results_are_converted() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("run.json");
        std::fs::write(&legacy, r#"[[0.0,0.5],[{"name":"h","values":[1.0,null]}]]"#).unwrap();
        let dest = dir.path().join("run.result");
        ResultFile::convert_legacy(&legacy, &dest).unwrap();
        let file = ResultFile::open(&dest).unwrap();
        let out = file.read_all().unwrap();
        assert_eq!(out.time, vec![0.0, 0.5]);
        assert_eq!(out.columns[0].name, "h");
        let values = out.columns[0].values.as_floats().unwrap();
        assert_eq!(values[0], 1.0);
        assert!(values[1].is_nan());
    }
}
