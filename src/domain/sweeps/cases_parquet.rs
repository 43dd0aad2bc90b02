//! Every case of a sweep as an Apache Parquet file, with typed columns: `index` (INT64),
//! `status` (STRING), each parameter (DOUBLE when every value of it is a finite number, else
//! STRING as the literal was given; null where a case left it at the base value), each KPI
//! (DOUBLE, null where it has no value or the case did not succeed) and `error` (STRING,
//! null when none). Columns are named as in the CSV of the cases.

use std::sync::Arc;

use parquet::basic::{LogicalType, Repetition, Type as Physical};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::get;
use crate::domain::error::{AppError, AppResult};
use crate::domain::ids::{SweepId, UserId};
use crate::sim::kpi::KpiSpec;
use crate::state::State;
use crate::store::sweeps::CaseRow;

/// Every case of the sweep as a Parquet file.
pub async fn cases_parquet(state: &State, user_id: &UserId, id: &SweepId) -> AppResult<Vec<u8>> {
    let view = get(state, user_id, id).await?;
    let parameters = view.sweep.parameter_names();
    let kpis: Vec<String> = view
        .sweep
        .stored()
        .map(|s| s.kpis.iter().map(KpiSpec::name).collect())
        .unwrap_or_default();
    let mut cases = Vec::with_capacity(view.sweep.case_count as usize);
    loop {
        let from = cases.last().map_or(0, |c: &CaseRow| c.index + 1);
        let page = state.store.sweep_cases(id, from, 5_000).await?;
        if page.is_empty() {
            break;
        }
        cases.extend(page);
    }
    let table = Table {
        parameters,
        kpis,
        cases,
    };
    tokio::task::spawn_blocking(move || table.write())
        .await?
        .map_err(|e| AppError::Fault(format!("writing the cases as Parquet: {e}")))
}

/// The cases and the names of their columns.
struct Table {
    parameters: Vec<String>,
    kpis: Vec<String>,
    cases: Vec<CaseRow>,
}

/// One column's cells: `None` is null.
enum Column {
    Int(Vec<i64>),
    Text(Vec<Option<String>>),
    Double(Vec<Option<f64>>),
}

impl Table {
    fn parameter(&self, name: &str) -> Vec<Option<&str>> {
        self.cases
            .iter()
            .map(|c| {
                c.start_values
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            })
            .collect()
    }

    /// The columns in order, each with its name.
    fn columns(&self) -> Vec<(String, Column)> {
        let mut columns = vec![
            (
                "index".to_string(),
                Column::Int(self.cases.iter().map(|c| i64::from(c.index)).collect()),
            ),
            (
                "status".to_string(),
                Column::Text(
                    self.cases
                        .iter()
                        .map(|c| Some(c.status.to_string()))
                        .collect(),
                ),
            ),
        ];
        for name in &self.parameters {
            columns.push((name.clone(), parameter_column(&self.parameter(name))));
        }
        for (i, name) in self.kpis.iter().enumerate() {
            let values = self
                .cases
                .iter()
                .map(|c| c.kpis.as_ref().and_then(|k| k.get(i).copied().flatten()))
                .collect();
            columns.push((name.clone(), Column::Double(values)));
        }
        columns.push((
            "error".to_string(),
            Column::Text(self.cases.iter().map(|c| c.error.clone()).collect()),
        ));
        columns
    }

    fn write(self) -> parquet::errors::Result<Vec<u8>> {
        let columns = self.columns();
        let fields = columns
            .iter()
            .map(|(name, column)| column_type(name, column).map(Arc::new))
            .collect::<parquet::errors::Result<Vec<_>>>()?;
        let schema = Type::group_type_builder("cases")
            .with_fields(fields)
            .build()?;
        let properties = WriterProperties::builder()
            .set_created_by(format!("fmu-gateway {}", env!("CARGO_PKG_VERSION")))
            .build();
        let mut writer =
            SerializedFileWriter::new(Vec::new(), Arc::new(schema), Arc::new(properties))?;
        let mut group = writer.next_row_group()?;
        let mut values = columns.iter();
        while let Some(mut out) = group.next_column()? {
            let (_, column) = values.next().expect("a column of the schema");
            write_column(out.untyped(), column)?;
            out.close()?;
        }
        group.close()?;
        writer.into_inner()
    }
}

/// A parameter's column: numbers when every value given is a finite number (as the model
/// gets it), else the literals as they were given, so nothing is altered.
fn parameter_column(values: &[Option<&str>]) -> Column {
    let numbers: Option<Vec<Option<f64>>> = values
        .iter()
        .map(|v| match v {
            None => Some(None),
            Some(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(Some),
        })
        .collect();
    match numbers {
        Some(numbers) => Column::Double(numbers),
        None => Column::Text(values.iter().map(|v| v.map(str::to_string)).collect()),
    }
}

fn column_type(name: &str, column: &Column) -> parquet::errors::Result<Type> {
    let (physical, logical, repetition) = match column {
        Column::Int(_) => (Physical::INT64, None, Repetition::REQUIRED),
        Column::Text(_) => (
            Physical::BYTE_ARRAY,
            Some(LogicalType::String),
            Repetition::OPTIONAL,
        ),
        Column::Double(_) => (Physical::DOUBLE, None, Repetition::OPTIONAL),
    };
    Type::primitive_type_builder(name, physical)
        .with_repetition(repetition)
        .with_logical_type(logical)
        .build()
}

/// The values present and each cell's definition level (1: a value, 0: null).
fn present<T: Clone>(cells: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
    let levels = cells.iter().map(|c| i16::from(c.is_some())).collect();
    (cells.iter().flatten().cloned().collect(), levels)
}

fn write_column(out: &mut ColumnWriter<'_>, column: &Column) -> parquet::errors::Result<()> {
    match (out, column) {
        (ColumnWriter::Int64ColumnWriter(w), Column::Int(v)) => {
            w.write_batch(v, None, None)?;
        }
        (ColumnWriter::DoubleColumnWriter(w), Column::Double(cells)) => {
            let (values, levels) = present(cells);
            w.write_batch(&values, Some(&levels), None)?;
        }
        (ColumnWriter::ByteArrayColumnWriter(w), Column::Text(cells)) => {
            let (values, levels) = present(cells);
            let values: Vec<ByteArray> = values
                .into_iter()
                .map(|s| ByteArray::from(s.into_bytes()))
                .collect();
            w.write_batch(&values, Some(&levels), None)?;
        }
        _ => unreachable!("the schema gives each column its writer"),
    }
    Ok(())
}
