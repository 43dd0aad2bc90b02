//! Input signals written as CSV — a header `time,<input>,…`, then a row of numbers per time —
//! as the CLI reads them from a file and the dashboard from a pasted table. One reader, so
//! both accept and refuse the same tables.

use super::protocol::InputSignal;

/// Why a table is not input signals. Lines count the header as line 1.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputCsvError {
    #[error("line 1: the header must be 'time' and then the inputs' names, e.g. time,u")]
    Header,
    #[error("line {line}: {message}")]
    Unreadable { line: usize, message: String },
    #[error("line {line}: {got} values for {want} columns")]
    RowLength {
        line: usize,
        got: usize,
        want: usize,
    },
    /// `column` counts from 1 (time is column 1).
    #[error("line {line}: '{cell}' in column '{name}' is not a number")]
    NotANumber {
        line: usize,
        column: usize,
        name: String,
        cell: String,
    },
    #[error("line 2: no rows: give a row of values per time")]
    NoRows,
}

/// The signals of a table, one per column after `time`. Blank lines are skipped; cells are
/// trimmed.
pub fn parse(reader: impl std::io::Read) -> Result<Vec<InputSignal>, InputCsvError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(reader);
    let header = reader
        .headers()
        .map_err(|e| InputCsvError::Unreadable {
            line: 1,
            message: e.to_string(),
        })?
        .clone();
    if header.get(0) != Some("time") || header.len() < 2 {
        return Err(InputCsvError::Header);
    }
    let mut signals: Vec<InputSignal> = header
        .iter()
        .skip(1)
        .map(|name| InputSignal {
            name: name.to_string(),
            t: vec![],
            u: vec![],
        })
        .collect();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| InputCsvError::Unreadable {
            line,
            message: e.to_string(),
        })?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != header.len() {
            return Err(InputCsvError::RowLength {
                line,
                got: record.len(),
                want: header.len(),
            });
        }
        let number = |column: usize| -> Result<f64, InputCsvError> {
            let cell = &record[column];
            cell.parse::<f64>().map_err(|_| InputCsvError::NotANumber {
                line,
                column: column + 1,
                name: header[column].to_string(),
                cell: cell.to_string(),
            })
        };
        let t = number(0)?;
        for (column, signal) in signals.iter_mut().enumerate() {
            signal.t.push(t);
            signal.u.push(number(column + 1)?);
        }
    }
    if signals.first().is_none_or(|s| s.t.is_empty()) {
        return Err(InputCsvError::NoRows);
    }
    Ok(signals)
}
