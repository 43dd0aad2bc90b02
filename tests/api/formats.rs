//! Results as files other tools read, through the real server: a MATLAB v4 file in Dymola's
//! layout (`?format=mat`) and an Apache Parquet file (`?format=parquet`), read back and
//! compared, column by column, with the CSV of the same run (which tests/api/types.rs holds
//! equal to the JSON). A value a MAT file cannot hold is a 406 that names its column.

use fmu_gateway::format::{Number, Number32};
use parquet::basic::{LogicalType, Type as Physical};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{Value, json};

use crate::common::{Api, TestApp, api_client, mat, spawn_app};

/// An answer's status, `Content-Type`, `Content-Disposition` and body.
struct Download {
    status: u16,
    media: String,
    disposition: String,
    body: Vec<u8>,
}

async fn download(app: &TestApp, key: &str, path: &str, accept: &str) -> Download {
    let resp = api_client()
        .get(app.at(path))
        .bearer_auth(key)
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (status, media, disposition) = (
        resp.status().as_u16(),
        header("content-type"),
        header("content-disposition"),
    );
    let body = resp.bytes().await.unwrap().to_vec();
    Download {
        status,
        media,
        disposition,
        body,
    }
}

/// The CSV of a run: its header and its columns as text.
async fn csv_columns(app: &TestApp, key: &str, id: &str) -> Vec<(String, Vec<String>)> {
    let csv = download(
        app,
        key,
        &format!("/api/v1/runs/{id}/result?format=csv"),
        "*/*",
    )
    .await;
    assert_eq!(csv.status, 200);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv.body.as_slice());
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (0..records[0].len())
        .map(|c| {
            let values = records[1..].iter().map(|r| r[c].clone()).collect();
            (records[0][c].clone(), values)
        })
        .collect()
}

/// The Feedthrough outputs of every numeric type, with start values that test each type's
/// ends (every one a double holds exactly: UInt64's is 2^63).
fn numeric_cases() -> Vec<(&'static str, Value)> {
    vec![
        ("Float32_discrete", json!(0.1)),
        ("Float64_discrete", json!(2.47e-321)),
        ("Int8", json!(-128)),
        ("UInt8", json!(255)),
        ("Int16", json!(-32768)),
        ("UInt16", json!(65535)),
        ("Int32", json!(-2147483648i64)),
        ("UInt32", json!(4294967295u64)),
        ("Int64", json!(i64::MIN)),
        ("UInt64", json!(1u64 << 63)),
        ("Boolean", json!(true)),
        ("Enumeration", json!("Option 2")),
    ]
}

/// A Feedthrough run that sets each case's input and records its output.
async fn feedthrough(app: &TestApp, key: &str, cases: &[(&str, Value)]) -> String {
    let start: serde_json::Map<String, Value> = cases
        .iter()
        .map(|(base, v)| (format!("{base}_input"), v.clone()))
        .collect();
    let outputs: Vec<String> = cases.iter().map(|(b, _)| format!("{b}_output")).collect();
    let run = app
        .run(
            key,
            &json!({
                "fmu_id": "lib:Feedthrough",
                "stop_time": 0.2,
                "output_interval": 0.1,
                "start_values": start,
                "outputs": outputs,
            }),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    run["id"].as_str().unwrap().to_string()
}

/// A MAT value as the CSV writes it: the same text means the same value (CSV numbers are the
/// shortest text that reads back exactly; a Float32 the shortest for its float).
fn mat_text(value: f64, csv_text: &str, r#type: &str) -> String {
    match r#type {
        "float32" => {
            assert_eq!(f64::from(value as f32), value, "a Float32 widened exactly");
            Number32(value as f32).to_string()
        }
        "float64" => Number(value).to_string(),
        "boolean" => (if value == 1.0 { "true" } else { "false" }).to_string(),
        _ => {
            assert_eq!(value.fract(), 0.0, "{csv_text}: an integer");
            format!("{}", value as i128)
        }
    }
}

/// Every numeric type of the library's Feedthrough comes back from the MAT file equal to the
/// CSV, in Dymola's layout; the file is offered as `<run id>.mat`, by `?format` and `Accept`.
#[tokio::test]
async fn a_mat_file_holds_every_numeric_type_exactly_in_dymolas_layout() {
    let app = spawn_app().await;
    let key = &app.register().await.api_key;
    let id = feedthrough(&app, key, &numeric_cases()).await;
    let json = app
        .get_json(&format!("/api/v1/runs/{id}/result"), key)
        .await;
    let csv = csv_columns(&app, key, &id).await;
    let path = format!("/api/v1/runs/{id}/result");
    let by_query = download(&app, key, &format!("{path}?format=mat"), "*/*").await;
    let by_accept = download(&app, key, &path, "application/x-matlab-data").await;
    for mat in [&by_query, &by_accept] {
        assert_eq!(mat.status, 200, "{}", String::from_utf8_lossy(&mat.body));
        assert_eq!(mat.media, "application/x-matlab-data");
        assert_eq!(
            mat.disposition,
            format!("attachment; filename=\"{id}.mat\"")
        );
    }
    assert_eq!(by_query.body, by_accept.body);
    let variables = mat::dymola_variables(&by_query.body);
    let names: Vec<&str> = variables.iter().map(|(n, _)| n.as_str()).collect();
    let csv_names: Vec<&str> = csv.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, csv_names);
    for ((name, values), (_, texts)) in variables.iter().zip(&csv) {
        let r#type = if name == "time" {
            "float64"
        } else {
            json["types"][name]["type"].as_str().unwrap()
        };
        let as_text: Vec<String> = values
            .iter()
            .zip(texts)
            .map(|(v, t)| mat_text(*v, t, r#type))
            .collect();
        assert_eq!(&as_text, texts, "{name}");
    }
    // Option 2 of the enumeration is its value, 2; UInt64's 2^63 whole.
    let value = |name: &str| variables.iter().find(|(n, _)| n == name).unwrap().1[0];
    assert_eq!(value("Enumeration_output"), 2.0);
    assert_eq!(value("UInt64_output"), 9223372036854775808.0);
    // data_1: the start and stop time.
    let (_, matrices) = mat::read(&by_query.body);
    assert_eq!(matrices["data_1"].numbers, [0.0, 0.2]);
}

/// A String variable, and an integer beyond what a double holds exactly, have no MAT file:
/// a 406 that names the column and the formats that hold it, never a rounded value.
#[tokio::test]
async fn a_mat_file_is_refused_for_text_and_inexact_integers_naming_the_column() {
    let app = spawn_app().await;
    let key = &app.register().await.api_key;
    let text = feedthrough(
        &app,
        key,
        &[("Float64_discrete", json!(1.5)), ("String", json!("hi"))],
    )
    .await;
    let big = (1u64 << 53) + 1;
    let inexact = feedthrough(&app, key, &[("UInt64", json!(big))]).await;
    for (id, column, detail) in [
        (&text, "String_output", "string".to_string()),
        (&inexact, "UInt64_output", big.to_string()),
    ] {
        let path = format!("/api/v1/runs/{id}/result");
        for (query, accept) in [("?format=mat", "*/*"), ("", "application/x-matlab-data")] {
            let answer = download(&app, key, &format!("{path}{query}"), accept).await;
            let body: Value = serde_json::from_slice(&answer.body).unwrap();
            assert_eq!(answer.status, 406, "{body}");
            assert_eq!(body["code"], "not_acceptable", "{body}");
            let message = body["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("'{column}'"))
                    && message.contains(&detail)
                    && message.contains("Parquet"),
                "{message}"
            );
        }
        // The same result is served whole in the other formats.
        let parquet = download(&app, key, &format!("{path}?format=parquet"), "*/*").await;
        assert_eq!(parquet.status, 200);
    }
    // The unsigned 64-bit value is whole in JSON and Parquet.
    let json = app
        .get_json(&format!("/api/v1/runs/{inexact}/result"), key)
        .await;
    assert_eq!(json["columns"]["UInt64_output"][0], json!(big));
    let parquet = download(
        &app,
        key,
        &format!("/api/v1/runs/{inexact}/result"),
        "application/x-parquet",
    )
    .await;
    let rows = parquet_rows(&parquet.body);
    assert_eq!(rows[0][1], ("UInt64_output".to_string(), Field::ULong(big)));
}

/// The rows of a Parquet file, each its (column, value) pairs.
fn parquet_rows(bytes: &[u8]) -> Vec<Vec<(String, Field)>> {
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.to_vec())).unwrap();
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            row.unwrap()
                .get_column_iter()
                .map(|(n, f)| (n.clone(), f.clone()))
                .collect()
        })
        .collect()
}

/// A Parquet value as the CSV writes it.
fn parquet_text(field: &Field) -> String {
    match field {
        Field::Double(v) => Number(*v).to_string(),
        Field::Float(v) => Number32(*v).to_string(),
        Field::Bool(v) => v.to_string(),
        Field::Byte(v) => v.to_string(),
        Field::Short(v) => v.to_string(),
        Field::Int(v) => v.to_string(),
        Field::Long(v) => v.to_string(),
        Field::UByte(v) => v.to_string(),
        Field::UShort(v) => v.to_string(),
        Field::UInt(v) => v.to_string(),
        Field::ULong(v) => v.to_string(),
        Field::Str(v) => v.clone(),
        Field::Bytes(v) => hex::encode(v.data()),
        other => panic!("a field we never write: {other:?}"),
    }
}

/// Every type of the library's Feedthrough, text included, and StateSpace's arrays come back
/// from Parquet equal to the CSV, each column in its own type; `Accept` picks Parquet too.
#[tokio::test]
async fn a_parquet_file_keeps_every_type_and_array_element_in_typed_columns() {
    let app = spawn_app().await;
    let key = &app.register().await.api_key;
    let mut cases = numeric_cases();
    cases.push(("String", json!("a, \"quoted\" text")));
    cases.push(("Binary", json!("00ff1042")));
    let every_type = feedthrough(&app, key, &cases).await;
    let arrays = app
        .run(
            key,
            &json!({ "fmu_id": "lib:StateSpace", "stop_time": 1, "output_interval": 0.25,
                     "outputs": ["y", "x", "A"] }),
        )
        .await;
    assert_eq!(arrays["status"], "succeeded", "{arrays}");
    let arrays = arrays["id"].as_str().unwrap().to_string();
    for id in [&every_type, &arrays] {
        let path = format!("/api/v1/runs/{id}/result");
        let file = download(&app, key, &format!("{path}?format=parquet"), "*/*").await;
        assert_eq!(file.status, 200);
        assert_eq!(file.media, "application/vnd.apache.parquet");
        assert_eq!(
            file.disposition,
            format!("attachment; filename=\"{id}.parquet\"")
        );
        let by_accept = download(&app, key, &path, "application/vnd.apache.parquet").await;
        assert_eq!(by_accept.body, file.body);
        let csv = csv_columns(&app, key, id).await;
        let rows = parquet_rows(&file.body);
        assert_eq!(rows.len(), csv[0].1.len(), "a row per time point");
        for (c, (name, texts)) in csv.iter().enumerate() {
            let got: Vec<String> = rows
                .iter()
                .map(|row| {
                    assert_eq!(&row[c].0, name);
                    parquet_text(&row[c].1)
                })
                .collect();
            assert_eq!(&got, texts, "{name}");
        }
    }
    // Each column's physical and logical type.
    let file = download(
        &app,
        key,
        &format!("/api/v1/runs/{every_type}/result?format=parquet"),
        "*/*",
    )
    .await;
    let reader = SerializedFileReader::new(bytes::Bytes::from(file.body)).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let types: Vec<(String, Physical, Option<LogicalType>)> = schema
        .columns()
        .iter()
        .map(|c| {
            (
                c.name().to_string(),
                c.physical_type(),
                c.logical_type_ref().cloned(),
            )
        })
        .collect();
    let int = |bit_width, is_signed| {
        Some(LogicalType::Integer(parquet::basic::IntType {
            bit_width,
            is_signed,
        }))
    };
    let expected = [
        ("time", Physical::DOUBLE, None),
        ("Float32_discrete_output", Physical::FLOAT, None),
        ("Float64_discrete_output", Physical::DOUBLE, None),
        ("Int8_output", Physical::INT32, int(8, true)),
        ("UInt8_output", Physical::INT32, int(8, false)),
        ("Int16_output", Physical::INT32, int(16, true)),
        ("UInt16_output", Physical::INT32, int(16, false)),
        ("Int32_output", Physical::INT32, int(32, true)),
        ("UInt32_output", Physical::INT32, int(32, false)),
        ("Int64_output", Physical::INT64, int(64, true)),
        ("UInt64_output", Physical::INT64, int(64, false)),
        ("Boolean_output", Physical::BOOLEAN, None),
        ("Enumeration_output", Physical::INT64, None),
        (
            "String_output",
            Physical::BYTE_ARRAY,
            Some(LogicalType::String),
        ),
        ("Binary_output", Physical::BYTE_ARRAY, None),
    ];
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(n, p, l)| (n.to_string(), p, l))
        .collect();
    assert_eq!(types, expected);
}

/// The dashboard's run page offers each format next to the CSV, MATLAB only for a result of
/// numbers; its downloads are the API's files, named by the run.
#[tokio::test]
async fn the_run_page_offers_every_format_and_matlab_only_for_numbers() {
    let app = spawn_app().await;
    let account = app.register().await;
    let key = &account.api_key;
    let numbers = feedthrough(&app, key, &numeric_cases()).await;
    let text = feedthrough(&app, key, &[("String", json!("hi"))]).await;
    let client = crate::common::browser();
    app.browser_login(&client, &account).await;
    let page = |id: String| {
        let client = client.clone();
        let url = app.at(&format!("/runs/{id}"));
        async move {
            let page = client.get(url).send().await.unwrap();
            assert_eq!(page.status(), 200);
            page.text().await.unwrap()
        }
    };
    let numbers_page = page(numbers.clone()).await;
    for extension in ["csv", "json", "parquet", "mat"] {
        let link = format!("href=\"/runs/{numbers}/result.{extension}\"");
        assert!(numbers_page.contains(&link), "{link} in {numbers_page}");
        let web = client
            .get(app.at(&format!("/runs/{numbers}/result.{extension}")))
            .send()
            .await
            .unwrap();
        assert_eq!(web.status(), 200, "{extension}");
        assert_eq!(
            web.headers()["content-disposition"],
            format!("attachment; filename=\"{numbers}.{extension}\"").as_str()
        );
        let web = web.bytes().await.unwrap();
        let api = download(
            &app,
            key,
            &format!("/api/v1/runs/{numbers}/result?format={extension}"),
            "*/*",
        )
        .await;
        assert_eq!(web.as_ref(), api.body.as_slice(), "{extension}");
    }
    let text_page = page(text.clone()).await;
    assert!(text_page.contains(&format!("href=\"/runs/{text}/result.parquet\"")));
    assert!(!text_page.contains(&format!("href=\"/runs/{text}/result.mat\"")));
    assert!(
        text_page.contains("MATLAB files hold only numbers"),
        "{text_page}"
    );
    let refused = client
        .get(app.at(&format!("/runs/{text}/result.mat")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 406);
    assert!(refused.text().await.unwrap().contains("String_output"));
}

/// JSON and CSV are named inline (a browser or the API docs show them), the binary formats
/// as attachments.
#[tokio::test]
async fn every_format_names_its_file_by_the_run() {
    let app = spawn_app().await;
    let key = &app.register().await.api_key;
    let id = feedthrough(&app, key, &[("Float64_discrete", json!(1.5))]).await;
    for (format, disposition, media) in [
        ("json", "inline", "application/json; charset=utf-8"),
        ("csv", "inline", "text/csv; charset=utf-8"),
        ("mat", "attachment", "application/x-matlab-data"),
        ("parquet", "attachment", "application/vnd.apache.parquet"),
    ] {
        let path = format!("/api/v1/runs/{id}/result?format={format}");
        let answer = download(&app, key, &path, "*/*").await;
        assert_eq!(answer.status, 200, "{format}");
        assert_eq!(answer.media, media);
        assert_eq!(
            answer.disposition,
            format!("{disposition}; filename=\"{id}.{format}\"")
        );
    }
}
