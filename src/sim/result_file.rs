//! A run's results on disk, and their conversion to JSON and CSV a chunk at a time.
//!
//! A result file is one JSON header line, `{"format":"fmu-gateway-result/1","rows":N,
//! "columns":[names]}`, followed by the values as little-endian `f64`s, column by column:
//! `rows` time values, then `rows` values of each column in order — exactly what the worker
//! sends after `Done`, so the parent copies them to disk as they arrive and never holds them.
//! Any value is reachable with one positioned read, so JSON (column by column) and CSV (row
//! chunks across the columns) are both produced in bounded chunks: the server's memory per
//! download is a chunk, however large the result (up to the engine's cap).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::protocol::{Column, SimOutput};
use crate::format::{Number, csv_cell, non_finite_name};

/// The `format` of the header line.
const FORMAT: &str = "fmu-gateway-result/1";
/// Bytes a chunk of converted output is filled to before it is handed on.
pub const CHUNK_BYTES: usize = 64 << 10;
/// Values read from disk at once.
const READ_VALUES: usize = 8 << 10;
/// Longest a written value can be (`-2.2250738585072014e-308,`): reads are sized by it so a
/// chunk overshoots [`CHUNK_BYTES`] by at most one row.
const MAX_VALUE_BYTES: usize = 25;

/// What a result file holds, from its header line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub rows: u64,
    /// Variable names, in the order they were asked for (time is not among them).
    pub columns: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct HeaderLine<'a> {
    format: &'a str,
    #[serde(flatten)]
    header: Header,
}

impl Header {
    /// Writes the header line.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let line = HeaderLine {
            format: FORMAT,
            header: self.clone(),
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")
    }

    /// Bytes of values that follow the header.
    fn data_bytes(&self) -> Option<u64> {
        self.rows
            .checked_mul(self.columns.len() as u64 + 1)?
            .checked_mul(8)
    }
}

/// An open, checked result file.
#[derive(Debug)]
pub struct ResultFile {
    file: File,
    header: Header,
    data_start: u64,
}

/// The formats results are served in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `{"time":[…],"variables":[…],"columns":{name:[…]}}`, the API's `RunResult`; a
    /// non-finite value is the string `"NaN"`, `"Infinity"` or `"-Infinity"`.
    Json,
    /// A header `time,<variable>,…` (names neutralised against formulas), then one row per
    /// time point.
    Csv,
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
        let parsed: HeaderLine<'_> = serde_json::from_slice(&line).map_err(damaged)?;
        if parsed.format != FORMAT {
            return Err(damaged(format!("unknown format {}", parsed.format)));
        }
        let header = parsed.header;
        let data_start = line.len() as u64;
        let expected = header
            .data_bytes()
            .and_then(|b| b.checked_add(data_start))
            .ok_or_else(|| damaged("impossible size"))?;
        let actual = file.metadata()?.len();
        if actual != expected {
            return Err(damaged(format!("{actual} bytes, {expected} expected")));
        }
        Ok(ResultFile {
            file,
            header,
            data_start,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Time points × (variables + time): what the file holds.
    pub fn values(&self) -> u64 {
        self.header
            .rows
            .saturating_mul(self.header.columns.len() as u64 + 1)
    }

    /// Fills `out` with values of column `column` (0 is time, then the variables) from `row`.
    fn read(&self, column: usize, row: u64, out: &mut [f64]) -> io::Result<()> {
        let mut bytes = vec![0u8; out.len() * 8];
        let offset = self.data_start + (column as u64 * self.header.rows + row) * 8;
        self.file.read_exact_at(&mut bytes, offset)?;
        for (v, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(b);
            *v = f64::from_le_bytes(le);
        }
        Ok(())
    }

    /// The last value of each variable (none for a result without rows).
    pub fn last_values(&self) -> io::Result<Vec<(String, f64)>> {
        let Some(last) = self.header.rows.checked_sub(1) else {
            return Ok(vec![]);
        };
        let mut v = [0.0];
        let mut out = Vec::with_capacity(self.header.columns.len());
        for (i, name) in self.header.columns.iter().enumerate() {
            self.read(i + 1, last, &mut v)?;
            out.push((name.clone(), v[0]));
        }
        Ok(out)
    }

    /// Every `stride`-th row (and the last one), at most about `max_rows` of them: enough for a
    /// plot without loading a large result.
    pub fn sampled(&self, max_rows: u64) -> io::Result<SimOutput> {
        let rows = self.header.rows;
        let stride = rows.div_ceil(max_rows.max(1)).max(1);
        let picked: Vec<u64> = (0..rows)
            .step_by(stride as usize)
            .chain((rows > 0 && !(rows - 1).is_multiple_of(stride)).then(|| rows - 1))
            .collect();
        let column = |c: usize| -> io::Result<Vec<f64>> {
            if stride == 1 {
                let mut all = vec![0.0; rows as usize];
                self.read(c, 0, &mut all)?;
                return Ok(all);
            }
            let mut v = [0.0];
            picked
                .iter()
                .map(|&r| self.read(c, r, &mut v).map(|()| v[0]))
                .collect()
        };
        let time = column(0)?;
        let columns = (0..self.header.columns.len())
            .map(|i| {
                Ok(Column {
                    name: self.header.columns[i].clone(),
                    values: column(i + 1)?,
                })
            })
            .collect::<io::Result<_>>()?;
        Ok(SimOutput {
            time,
            columns,
            log: String::new(),
        })
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
        let header = Header {
            rows: time.len() as u64,
            columns: columns.iter().map(|c| c.name.clone()).collect(),
        };
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

/// Where a conversion has got to; [`Cursor::next`] appends the next chunk.
#[derive(Debug)]
struct Cursor {
    format: Format,
    started: bool,
    /// JSON: 0 is time, then the variables; past the last, finished. CSV: unused.
    column: usize,
    row: u64,
    values: Vec<f64>,
}

impl Cursor {
    fn new(format: Format) -> Cursor {
        Cursor {
            format,
            started: false,
            column: 0,
            row: 0,
            values: Vec::new(),
        }
    }

    /// Appends about [`CHUNK_BYTES`] of output to `buf`; `false` once it is all written.
    fn next(&mut self, file: &ResultFile, buf: &mut Vec<u8>) -> io::Result<bool> {
        match self.format {
            Format::Json => self.next_json(file, buf),
            Format::Csv => self.next_csv(file, buf),
        }
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
                let room = (CHUNK_BYTES - buf.len()) / MAX_VALUE_BYTES;
                let n = (header.rows - self.row).min(room.clamp(1, READ_VALUES) as u64) as usize;
                self.values.resize(n, 0.0);
                file.read(self.column, self.row, &mut self.values)?;
                for (i, v) in self.values.iter().enumerate() {
                    if self.row + i as u64 > 0 {
                        buf.push(b',');
                    }
                    // As serde_json writes numbers (shortest round-trip); a non-finite value
                    // by its name, as `format::JsonNumber` writes it.
                    match non_finite_name(*v) {
                        None => buf.extend_from_slice(number.format_finite(*v).as_bytes()),
                        Some(name) => {
                            buf.push(b'"');
                            buf.extend_from_slice(name.as_bytes());
                            buf.push(b'"');
                        }
                    }
                }
                self.row += n as u64;
                continue;
            }
            buf.push(b']');
            if self.column == 0 {
                buf.extend_from_slice(b",\"variables\":");
                serde_json::to_writer(&mut *buf, &header.columns)?;
                buf.extend_from_slice(b",\"columns\":{");
            }
            self.column += 1;
            self.row = 0;
            let Some(name) = header.columns.get(self.column - 1) else {
                buf.extend_from_slice(b"}}");
                return Ok(false);
            };
            if self.column > 1 {
                buf.push(b',');
            }
            serde_json::to_writer(&mut *buf, name)?;
            buf.extend_from_slice(b":[");
        }
        Ok(true)
    }

    fn next_csv(&mut self, file: &ResultFile, buf: &mut Vec<u8>) -> io::Result<bool> {
        let header = &file.header;
        let width = header.columns.len() + 1;
        if !self.started {
            let mut w = csv::Writer::from_writer(&mut *buf);
            w.write_field("time")?;
            for name in &header.columns {
                w.write_field(csv_cell(name).as_bytes())?;
            }
            w.write_record(None::<&[u8]>)?;
            w.flush()?;
            self.started = true;
        }
        // Numbers need no quoting: they are digits, signs, '.', 'e', "nan" or "inf".
        let chunk_rows = (READ_VALUES / width).max(1);
        while buf.len() < CHUNK_BYTES && self.row < header.rows {
            let room = (CHUNK_BYTES - buf.len()) / (MAX_VALUE_BYTES * width);
            let n = (header.rows - self.row).min(room.clamp(1, chunk_rows) as u64) as usize;
            self.values.resize(n * width, 0.0);
            for (c, column) in self.values.chunks_exact_mut(n).enumerate() {
                file.read(c, self.row, column)?;
            }
            for r in 0..n {
                for c in 0..width {
                    if c > 0 {
                        buf.push(b',');
                    }
                    write!(buf, "{}", Number(self.values[c * n + r]))?;
                }
                buf.push(b'\n');
            }
            self.row += n as u64;
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
        Header {
            rows: time.len() as u64,
            columns: columns.iter().map(|(n, _)| n.to_string()).collect(),
        }
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
            r#"{"time":[0.0,0.5],"variables":["h","v"],"columns":{"h":[1.0,2.47e-321],"v":["Infinity",-3.0]}}"#
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
            r#"{"time":[0.0,1.0,2.0],"variables":["x"],"columns":{"x":["NaN","Infinity","-Infinity"]}}"#
        );
        assert_eq!(text(&file, Format::Csv), "time,x\n0,nan\n1,inf\n2,-inf\n");
        let back = file.read_all().unwrap().columns[0].values.clone();
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
            }
        }
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
        assert_eq!(sample.columns[0].values, vec![5.0, 8.0, 9.0]);
        assert_eq!(file.read_all().unwrap().time.len(), 5);

        let (_dir, empty) = stored(&[], &[("a", &[])]);
        assert!(empty.last_values().unwrap().is_empty());
        assert_eq!(
            text(&empty, Format::Json),
            r#"{"time":[],"variables":["a"],"columns":{"a":[]}}"#
        );
        assert_eq!(text(&empty, Format::Csv), "time,a\n");
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
        assert_eq!(out.columns[0].values[0], 1.0);
        assert!(out.columns[0].values[1].is_nan());
    }
}
