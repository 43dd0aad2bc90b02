//! Results as a MATLAB file in the layout Dymola writes (and DyMat, ModelicaRes, OMPython,
//! buildingspy and Modelon's result readers load): MAT version 4, little-endian, the "1.1"
//! result layout, "binTrans".
//!
//! The file is six matrices, each a 20-byte header (type, rows, columns, imaginary flag,
//! name length), its NUL-terminated name and its elements column by column:
//! - `Aclass`: char 4 × 11, the rows "Atrajectory", "1.1", "" and "binTrans";
//! - `name` and `description`: char, one variable a column (as "binTrans" says: a reader
//!   transposes them), padded with spaces; `time` first, then every element column named as
//!   the CSV names it (`y[1]`, `A[1,2]`); a description is the unit in brackets, as Dymola's;
//! - `dataInfo`: int32 4 × n, a column per variable: the data matrix (0 for time, the
//!   abscissa; 2 for everything else), its row there (1-based), interpolation 0 (linear),
//!   extrapolation -1 (undefined outside the time range);
//! - `data_1`: double 1 × 2, the start and stop time (no variable is stored as a constant:
//!   every recorded variable has a value at each time point);
//! - `data_2`: double n × time points: column k is time point k, time first, then each
//!   variable's value — so it is written a few time points at a time, in bounded memory.
//!
//! Numbers become doubles, Booleans 0 and 1, enumerations their value. A value a double cannot
//! hold (a String or Binary variable, an integer a double cannot hold exactly) is refused
//! before anything is written ([`first_unrepresentable`]): never rounded, never dropped.

use std::io;

use super::recorded::{ValueType, Values};
use super::result_file::ResultFile;

/// Why a result has no MAT file: the column and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unrepresentable {
    pub column: String,
    pub reason: Reason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A String or Binary variable: a MAT result holds only numbers.
    NotNumeric(ValueType),
    /// An integer (as text) that no double is equal to.
    Inexact(String),
}

impl std::fmt::Display for Unrepresentable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let column = &self.column;
        match &self.reason {
            Reason::NotNumeric(t) => {
                let t = serde_json::to_value(t).unwrap_or_default();
                let t = t.as_str().unwrap_or("text");
                write!(
                    f,
                    "'{column}' is a {t} variable and a MAT file holds only numbers"
                )?
            }
            Reason::Inexact(v) => write!(
                f,
                "'{column}' holds {v}, which a MAT file's doubles cannot hold exactly"
            )?,
        }
        f.write_str("; ask for JSON, CSV or Parquet")
    }
}

/// Matrix element types (the P digit of a MAT v4 type, little-endian so M = 0).
#[derive(Clone, Copy)]
enum Element {
    Double,
    Int32,
    /// Characters, one byte each (type 51: uint8 text).
    Char,
}

impl Element {
    fn type_code(self) -> i32 {
        match self {
            Element::Double => 0,
            Element::Int32 => 20,
            Element::Char => 51,
        }
    }
}

/// Appends a matrix header (its elements follow, column by column).
fn matrix_header(
    name: &str,
    element: Element,
    rows: u64,
    columns: u64,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    // A MAT v4 dimension is an int32 (results are capped far below it).
    let dimension = |n: u64| {
        i32::try_from(n).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{name} has {n} rows or columns, more than a MAT file holds"),
            )
        })
    };
    let words = [
        element.type_code(),
        dimension(rows)?,
        dimension(columns)?,
        0, // real, not complex
        dimension(name.len() as u64 + 1)?,
    ];
    words
        .iter()
        .for_each(|w| out.extend_from_slice(&w.to_le_bytes()));
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    Ok(())
}

/// Appends a char matrix holding one string a column (`transposed`, as "binTrans" stores
/// `name` and `description`) or a row, padded with spaces. A character is a byte: a name
/// beyond ASCII is written as its UTF-8 bytes (scipy decodes them as Latin-1; re-encode to
/// read it), never altered.
fn char_matrix(
    name: &str,
    strings: &[&str],
    transposed: bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let width = strings.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
    let count = strings.len() as u64;
    let byte = |s: &str, i: usize| s.as_bytes().get(i).copied().unwrap_or(b' ');
    if transposed {
        matrix_header(name, Element::Char, width as u64, count, out)?;
        for s in strings {
            out.extend((0..width).map(|i| byte(s, i)));
        }
    } else {
        matrix_header(name, Element::Char, count, width as u64, out)?;
        for i in 0..width {
            out.extend(strings.iter().map(|s| byte(s, i)));
        }
    }
    Ok(())
}

/// The first column a MAT file cannot hold, if any: String and Binary columns by their
/// type, 64-bit integers and enumerations by reading their values (a few positioned reads a
/// chunk, so a large result is checked in bounded memory).
pub fn first_unrepresentable(file: &ResultFile) -> io::Result<Option<Unrepresentable>> {
    for (c, (name, r#type)) in file.column_types().enumerate() {
        if !r#type.is_numeric() {
            return Ok(Some(Unrepresentable {
                column: name.to_string(),
                reason: Reason::NotNumeric(r#type),
            }));
        }
        let wide = matches!(
            r#type,
            ValueType::Int64 | ValueType::UInt64 | ValueType::Enumeration
        );
        let mut row = 0;
        while wide && row < file.header().rows {
            let n = (file.header().rows - row).min(VALUES_AT_ONCE as u64) as usize;
            let values = file.read_column(c, row, n)?;
            if let Some(i) = (0..values.len()).find(|&i| exact_double(&values, i).is_none()) {
                return Ok(Some(Unrepresentable {
                    column: name.to_string(),
                    reason: Reason::Inexact(integer_text(&values, i)),
                }));
            }
            row += values.len().max(1) as u64;
        }
    }
    Ok(None)
}

/// Value `i` as the double equal to it; `None` for text or an integer no double equals.
fn exact_double(values: &Values, i: usize) -> Option<f64> {
    match values {
        Values::Int(v) => {
            let d = v[i] as f64;
            (d as i128 == i128::from(v[i])).then_some(d)
        }
        Values::UInt(v) => {
            let d = v[i] as f64;
            (d as i128 == i128::from(v[i])).then_some(d)
        }
        other => other.number(i),
    }
}

fn integer_text(values: &Values, i: usize) -> String {
    match values {
        Values::Int(v) => v[i].to_string(),
        Values::UInt(v) => v[i].to_string(),
        _ => String::new(),
    }
}

/// Where a MAT file being written has got to.
#[derive(Debug, Default)]
pub struct MatCursor {
    started: bool,
    /// The next time point of `data_2`.
    row: u64,
}

/// Values of `data_2` read at once (about: at least one time point).
const VALUES_AT_ONCE: usize = 8192;

impl MatCursor {
    /// Appends the next part of the file to `buf`; `false` once it is all written. Fails on a
    /// value [`first_unrepresentable`] would have named (callers check first, so a download
    /// never stops half-way for it).
    pub fn next(&mut self, file: &ResultFile, buf: &mut Vec<u8>) -> io::Result<bool> {
        let rows = file.header().rows;
        if !self.started {
            self.write_preamble(file, buf)?;
            self.started = true;
        }
        let width = file.column_types().len();
        while buf.len() < super::result_file::CHUNK_BYTES && self.row < rows {
            let n = (rows - self.row).min(VALUES_AT_ONCE.div_ceil(width + 1) as u64) as usize;
            let mut time = vec![0.0; n];
            file.read_time_at(self.row, &mut time)?;
            let columns = (0..width)
                .map(|c| file.read_column(c, self.row, n))
                .collect::<io::Result<Vec<_>>>()?;
            for (r, t) in time.iter().enumerate() {
                buf.extend_from_slice(&t.to_le_bytes());
                for ((name, _), values) in file.column_types().zip(&columns) {
                    let value = exact_double(values, r).ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("'{name}' has a value a MAT file cannot hold"),
                        )
                    })?;
                    buf.extend_from_slice(&value.to_le_bytes());
                }
            }
            self.row += n as u64;
        }
        Ok(self.row < rows)
    }

    /// Every matrix but `data_2`'s elements: `Aclass`, `name`, `description`, `dataInfo`,
    /// `data_1` and `data_2`'s header.
    fn write_preamble(&self, file: &ResultFile, buf: &mut Vec<u8>) -> io::Result<()> {
        let header = file.header();
        char_matrix(
            "Aclass",
            &["Atrajectory", "1.1", "", "binTrans"],
            false,
            buf,
        )?;
        let mut names = vec!["time"];
        let mut descriptions = vec![String::from("Simulation time [s]")];
        for (column, variable) in file.column_variables() {
            names.push(column);
            descriptions.push(match &variable.unit {
                Some(unit) => format!("[{unit}]"),
                None => String::new(),
            });
        }
        char_matrix("name", &names, true, buf)?;
        let descriptions: Vec<&str> = descriptions.iter().map(String::as_str).collect();
        char_matrix("description", &descriptions, true, buf)?;
        let count = names.len() as u64;
        matrix_header("dataInfo", Element::Int32, 4, count, buf)?;
        for i in 0..count as i32 {
            let info: [i32; 4] = if i == 0 {
                [0, 1, 0, -1]
            } else {
                [2, i + 1, 0, -1]
            };
            info.iter()
                .for_each(|v| buf.extend_from_slice(&v.to_le_bytes()));
        }
        let mut bounds = Vec::new();
        if let Some(last) = header.rows.checked_sub(1) {
            let (mut start, mut stop) = ([0.0], [0.0]);
            file.read_time_at(0, &mut start)?;
            file.read_time_at(last, &mut stop)?;
            bounds = vec![start[0], stop[0]];
        }
        matrix_header("data_1", Element::Double, 1, bounds.len() as u64, buf)?;
        bounds
            .iter()
            .for_each(|v| buf.extend_from_slice(&v.to_le_bytes()));
        matrix_header("data_2", Element::Double, count, header.rows, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_matrices_are_column_major_and_space_padded() {
        let mut out = Vec::new();
        char_matrix("n", &["ab", "c"], true, &mut out).unwrap();
        // type 51, 2 rows (the longest name), 2 columns (one a name), real, name "n\0".
        let header: Vec<i32> = out[..20]
            .chunks(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(header, [51, 2, 2, 0, 2]);
        assert_eq!(&out[20..], b"n\0abc ");

        let mut out = Vec::new();
        char_matrix("n", &["ab", "c"], false, &mut out).unwrap();
        assert_eq!(&out[20..], b"n\0acb ");
    }

    #[test]
    fn only_integers_a_double_equals_are_exact() {
        let big = (1i64 << 53) + 1;
        let v = Values::Int(vec![1 << 53, big, i64::MIN, i64::MAX]);
        assert_eq!(exact_double(&v, 0), Some(9007199254740992.0));
        assert_eq!(exact_double(&v, 1), None);
        assert_eq!(exact_double(&v, 2), Some(-9223372036854775808.0));
        assert_eq!(exact_double(&v, 3), None);
        let v = Values::UInt(vec![u64::MAX, 1 << 63]);
        assert_eq!(exact_double(&v, 0), None);
        assert_eq!(exact_double(&v, 1), Some(9223372036854775808.0));
    }
}
