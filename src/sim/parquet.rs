//! Results as an Apache Parquet file with typed columns, for pandas, polars, Spark and DuckDB.
//!
//! One required column per element column, named as the CSV names it (`y[1]`, `A[1,2]`),
//! after `time` (DOUBLE). Each keeps its type: Float64 DOUBLE, Float32 FLOAT; Int8, Int16,
//! Int32 INT32 and Int64 INT64 with the signed INTEGER logical type of their width; UInt8,
//! UInt16, UInt32 INT32 and UInt64 INT64 with the unsigned one (Parquet stores the same bits);
//! Boolean BOOLEAN; String BYTE_ARRAY STRING; Binary BYTE_ARRAY; an enumeration INT64, its
//! value. A variable's unit goes in the file's key-value metadata as `unit:<column>`.
//!
//! Written a row group at a time (up to 65,536 rows, fewer for a wide result so a row group's
//! numbers take at most [`ROW_GROUP_BYTES`]): a download holds one encoded row group (and the
//! String and Binary values of its rows) however large the result. Uncompressed: the crate is
//! built without its codecs, which would cost build time for results that are mostly
//! distinct doubles.

use std::io;
use std::sync::Arc;

use parquet::basic::{IntType, LogicalType, Repetition, Type as Physical};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::recorded::{ValueType, Values};
use super::result_file::ResultFile;

/// Most rows in a row group.
const ROW_GROUP_ROWS: u64 = 65_536;
/// About the most bytes a row group's numbers take (8 a value): a wide result gets fewer rows
/// a group.
const ROW_GROUP_BYTES: u64 = 16 << 20;
/// Values read from the result file at once.
const READ_VALUES: usize = 8192;

fn parquet_error(e: parquet::errors::ParquetError) -> io::Error {
    io::Error::other(format!("writing Parquet: {e}"))
}

/// The column type a value type is stored as.
fn column_type(name: &str, r#type: ValueType) -> parquet::errors::Result<Type> {
    use ValueType as T;
    let integer = |bit_width, is_signed| {
        Some(LogicalType::Integer(IntType {
            bit_width,
            is_signed,
        }))
    };
    let (physical, logical) = match r#type {
        T::Float64 => (Physical::DOUBLE, None),
        T::Float32 => (Physical::FLOAT, None),
        T::Int8 => (Physical::INT32, integer(8, true)),
        T::Int16 => (Physical::INT32, integer(16, true)),
        T::Int32 => (Physical::INT32, integer(32, true)),
        T::Int64 => (Physical::INT64, integer(64, true)),
        T::UInt8 => (Physical::INT32, integer(8, false)),
        T::UInt16 => (Physical::INT32, integer(16, false)),
        T::UInt32 => (Physical::INT32, integer(32, false)),
        T::UInt64 => (Physical::INT64, integer(64, false)),
        T::Enumeration => (Physical::INT64, None),
        T::Boolean => (Physical::BOOLEAN, None),
        T::String => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
        T::Binary => (Physical::BYTE_ARRAY, None),
    };
    Type::primitive_type_builder(name, physical)
        .with_repetition(Repetition::REQUIRED)
        .with_logical_type(logical)
        .build()
}

/// The file's schema: `time`, then every element column.
fn schema(file: &ResultFile) -> parquet::errors::Result<Type> {
    let mut fields = vec![Arc::new(column_type("time", ValueType::Float64)?)];
    for (name, r#type) in file.column_types() {
        fields.push(Arc::new(column_type(name, r#type)?));
    }
    Type::group_type_builder("result")
        .with_fields(fields)
        .build()
}

/// Where a Parquet file being written has got to.
#[derive(Default)]
pub struct ParquetCursor {
    /// Writes into its `Vec`, which is emptied into the output after each row group.
    writer: Option<SerializedFileWriter<Vec<u8>>>,
    row: u64,
}

impl std::fmt::Debug for ParquetCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetCursor")
            .field("row", &self.row)
            .finish()
    }
}

impl ParquetCursor {
    /// Appends the next row group (or, at the end, the footer) to `buf`; `false` once the file
    /// is all written.
    pub fn next(&mut self, file: &ResultFile, buf: &mut Vec<u8>) -> io::Result<bool> {
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => self.writer.insert(new_writer(file)?),
        };
        let rows = file.header().rows;
        if self.row < rows {
            let width = file.column_types().len() as u64 + 1;
            let group = (ROW_GROUP_BYTES / (8 * width)).clamp(1, ROW_GROUP_ROWS);
            let n = group.min(rows - self.row);
            write_row_group(writer, file, self.row, n)?;
            // The row group's bytes are taken out of the writer's Vec (nothing is written
            // into it behind the writer's back, so its offsets stay right).
            writer.flush()?;
            buf.append(writer.inner_mut());
            self.row += n;
            return Ok(true);
        }
        let writer = self.writer.take().expect("set above");
        buf.append(&mut writer.into_inner().map_err(parquet_error)?);
        Ok(false)
    }
}

fn new_writer(file: &ResultFile) -> io::Result<SerializedFileWriter<Vec<u8>>> {
    let metadata: Vec<KeyValue> = file
        .column_variables()
        .filter_map(|(column, variable)| {
            let unit = variable.unit.clone()?;
            Some(KeyValue::new(format!("unit:{column}"), unit))
        })
        .collect();
    let properties = WriterProperties::builder()
        .set_created_by(format!("fmu-gateway {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata((!metadata.is_empty()).then_some(metadata))
        .build();
    let schema = Arc::new(schema(file).map_err(parquet_error)?);
    SerializedFileWriter::new(Vec::new(), schema, Arc::new(properties)).map_err(parquet_error)
}

/// Writes rows `first..first + n` as one row group.
fn write_row_group(
    writer: &mut SerializedFileWriter<Vec<u8>>,
    file: &ResultFile,
    first: u64,
    n: u64,
) -> io::Result<()> {
    let mut group = writer.next_row_group().map_err(parquet_error)?;
    let mut column = 0;
    while let Some(mut out) = group.next_column().map_err(parquet_error)? {
        let mut row = first;
        while row < first + n {
            let want = (first + n - row).min(READ_VALUES as u64) as usize;
            let values = if column == 0 {
                let mut time = vec![0.0; want];
                file.read_time_at(row, &mut time)?;
                Values::Float(time)
            } else {
                file.read_column(column - 1, row, want)?
            };
            let r#type = match column {
                0 => ValueType::Float64,
                c => {
                    file.column_types()
                        .nth(c - 1)
                        .expect("a column of the schema")
                        .1
                }
            };
            write_values(out.untyped(), r#type, &values)?;
            row += values.len().max(1) as u64;
        }
        out.close().map_err(parquet_error)?;
        column += 1;
    }
    group.close().map_err(parquet_error)?;
    Ok(())
}

/// Writes `values` to the column writer of its type (the schema made them match).
fn write_values(out: &mut ColumnWriter<'_>, r#type: ValueType, values: &Values) -> io::Result<()> {
    let narrow = |v: &[i64]| -> io::Result<Vec<i32>> {
        v.iter()
            .map(|&x| {
                // UInt32 is stored as its bits (the unsigned INTEGER(32) type says so).
                let int32 = match r#type {
                    ValueType::UInt32 => u32::try_from(x).map(|u| u as i32),
                    _ => i32::try_from(x),
                };
                int32.map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the result file is damaged: {x} is not a {type:?}"),
                    )
                })
            })
            .collect()
    };
    let written = match (out, values) {
        (ColumnWriter::DoubleColumnWriter(w), Values::Float(v)) => w.write_batch(v, None, None),
        (ColumnWriter::FloatColumnWriter(w), Values::Float(v)) => {
            let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            w.write_batch(&v, None, None)
        }
        (ColumnWriter::Int32ColumnWriter(w), Values::Int(v)) => {
            w.write_batch(&narrow(v)?, None, None)
        }
        (ColumnWriter::Int64ColumnWriter(w), Values::Int(v)) => w.write_batch(v, None, None),
        (ColumnWriter::Int64ColumnWriter(w), Values::UInt(v)) => {
            // UInt64 is stored as its bits, as the unsigned INTEGER(64) type says.
            let v: Vec<i64> = v.iter().map(|&x| x as i64).collect();
            w.write_batch(&v, None, None)
        }
        (ColumnWriter::BoolColumnWriter(w), Values::Bool(v)) => w.write_batch(v, None, None),
        (ColumnWriter::ByteArrayColumnWriter(w), Values::Text(v)) => {
            let v: Vec<ByteArray> = v
                .iter()
                .map(|s| ByteArray::from(s.as_bytes().to_vec()))
                .collect();
            w.write_batch(&v, None, None)
        }
        (ColumnWriter::ByteArrayColumnWriter(w), Values::Bytes(v)) => {
            let v: Vec<ByteArray> = v.iter().map(|b| ByteArray::from(b.clone())).collect();
            w.write_batch(&v, None, None)
        }
        _ => unreachable!("the schema gives each value type its column type"),
    };
    written.map(|_| ()).map_err(parquet_error)
}
