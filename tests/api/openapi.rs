//! The OpenAPI document is a contract: any change to it must be deliberate. Regenerate the
//! snapshot with `UPDATE_SNAPSHOTS=1 cargo test --test api openapi`.

use serde_json::Value;

use crate::common::{api_client, spawn_app};

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/openapi.json");

#[test]
fn the_openapi_document_matches_the_snapshot() {
    let spec: Value = serde_json::from_str(&fmu_gateway::api::spec_json()).unwrap();
    let pretty = serde_json::to_string_pretty(&spec).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &pretty).unwrap();
    }
    let expected =
        std::fs::read_to_string(SNAPSHOT).expect("snapshot exists (UPDATE_SNAPSHOTS=1 to create)");
    assert_eq!(
        pretty, expected,
        "the API contract changed: review and UPDATE_SNAPSHOTS=1"
    );
}

#[tokio::test]
async fn the_spec_and_docs_are_served() {
    let app = spawn_app().await;
    let spec: Value = api_client()
        .get(app.at("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = spec["paths"].as_object().unwrap();
    for p in [
        "/me",
        "/keys",
        "/keys/{id}/revoke",
        "/keys/public-key",
        "/usage",
    ] {
        assert!(paths.contains_key(p), "{p} missing from {:?}", paths.keys());
    }
    let schemes = spec["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("BearerKey") && schemes.contains_key("ApiKeyHeader"));
    let error = &spec["components"]["schemas"]["ErrorBody"]["properties"];
    assert!(error["code"].is_object() && error["message"].is_object());
    let docs = api_client().get(app.at("/api/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(
        docs.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("swagger")
    );
}

/// The README's table of error codes is made from `ErrorCode` (the enum every error body's
/// `code` is): regenerate it with `UPDATE_SNAPSHOTS=1 cargo test --test api readme`.
#[test]
fn the_readmes_error_code_table_lists_every_code_the_server_sends() {
    use fmu_gateway::request::ErrorCode;
    const BEGIN: &str = "<!-- error codes: generated from ErrorCode by tests/api/openapi.rs -->\n";
    const END: &str = "<!-- end of error codes -->";
    let mut table = String::from("| `code` | Status | Meaning |\n|---|---|---|\n");
    for &code in ErrorCode::ALL {
        let info = code.info();
        let statuses: Vec<String> = info.statuses.iter().map(u16::to_string).collect();
        let meaning = info
            .meaning
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        table += &format!(
            "| `{}` | {} | {meaning} |\n",
            code.name(),
            statuses.join(", ")
        );
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme
        .find(BEGIN)
        .expect("the README marks its error-code table")
        + BEGIN.len();
    let end = readme[start..].find(END).expect("the table's end marker") + start;
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(
            path,
            format!("{}{table}{}", &readme[..start], &readme[end..]),
        )
        .unwrap();
        return;
    }
    assert_eq!(
        &readme[start..end],
        table,
        "the README's error codes differ from ErrorCode: UPDATE_SNAPSHOTS=1"
    );
}

/// Every operation has a summary and a description; every answer a description; every body
/// it sends or takes an example (on the schema it names).
#[test]
fn every_operation_and_answer_is_described_with_an_example() {
    let spec: Value = serde_json::from_str(&fmu_gateway::api::spec_json()).unwrap();
    let schemas = &spec["components"]["schemas"];
    let example_of = |media: &Value| -> bool {
        let schema = &media["schema"];
        let reference = schema["$ref"]
            .as_str()
            .or_else(|| schema["items"]["$ref"].as_str());
        match reference {
            Some(r) => {
                let name = r.trim_start_matches("#/components/schemas/");
                schemas[name].get("example").is_some()
            }
            // Plain text (CSV), an upload form: the description says what it holds.
            None => schema["type"] == "string" || schema["type"] == "object",
        }
    };
    let mut missing = Vec::new();
    for (path, operations) in spec["paths"].as_object().unwrap() {
        for (method, op) in operations.as_object().unwrap() {
            let name = format!("{method} {path}");
            for field in ["summary", "description"] {
                if op[field].as_str().is_none_or(str::is_empty) {
                    missing.push(format!("{name}: {field}"));
                }
            }
            for media in op["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
            {
                if !example_of(media.1) {
                    missing.push(format!("{name}: request example"));
                }
            }
            for (status, response) in op["responses"].as_object().unwrap() {
                if response["description"]
                    .as_str()
                    .is_none_or(|d| d.is_empty() || d == "Done.")
                {
                    missing.push(format!("{name} {status}: description"));
                }
                for media in response["content"].as_object().into_iter().flatten() {
                    if !example_of(media.1) {
                        missing.push(format!("{name} {status} {}: example", media.0));
                    }
                }
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}
