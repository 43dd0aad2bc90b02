//! The FMU registry over HTTP: uploads (good and hostile), the library, ids and aliases.

use std::io::Write;

use serde_json::{Value, json};

use crate::common::{
    Api, TestApp, api_client, archives, fresh_fmu, page_text, spawn_app, spawn_app_with,
};

/// A zip with the given (name, contents) entries.
fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        out.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(data).unwrap();
    }
    out.finish().unwrap().into_inner()
}

async fn upload(app: &TestApp, key: &str, path: &str, bytes: Vec<u8>) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(bytes).file_name("model.fmu");
    let form = reqwest::multipart::Form::new().part("file", part);
    api_client()
        .post(app.at(path))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

fn stored_files(app: &TestApp) -> usize {
    std::fs::read_dir(app.data_dir.join("fmus"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_fresh_start_serves_the_library_in_both_fmi_versions() {
    let app = spawn_app().await;
    let account = app.register().await;
    let list = app.get_json("/api/v1/fmus", &account.api_key).await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["library_id"].as_str())
        .collect();
    for model in [
        "BouncingBall",
        "VanDerPol",
        "Dahlquist",
        "Integrator",
        "Robertson",
    ] {
        assert!(ids.contains(&format!("lib:{model}").as_str()), "{ids:?}");
        assert!(
            ids.contains(&format!("lib:{model}@fmi2").as_str()),
            "{ids:?}"
        );
    }
    let ball = app
        .get_json("/api/v1/fmus/lib:BouncingBall", &account.api_key)
        .await;
    assert_eq!(
        ball["fmi_version"].as_str().unwrap().chars().next(),
        Some('3')
    );
    assert!(ball["co_simulation"].is_object() && ball["model_exchange"].is_object());
    let h = ball["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "h")
        .unwrap();
    assert_eq!(h["type"], "Float64");
    assert_eq!(h["unit"], "m");
    assert_eq!(ball["default_experiment"]["stop_time"], 3.0);
    let alias = app
        .get_json("/api/v1/fmus/msl:BouncingBall", &account.api_key)
        .await;
    assert_eq!(alias["id"], ball["id"]);
    let fmi2 = app
        .get_json("/api/v1/fmus/lib:BouncingBall@fmi2", &account.api_key)
        .await;
    assert_eq!(fmi2["fmi_version"], "2.0");
    let by_sha = app
        .get_json(
            &format!("/api/v1/fmus/{}", ball["id"].as_str().unwrap()),
            &account.api_key,
        )
        .await;
    assert_eq!(by_sha["library_id"], "lib:BouncingBall");
}

#[tokio::test]
async fn uploading_stores_once_and_keeps_uploads_private() {
    let app = spawn_app().await;
    let alice = app.register().await;
    let bob = app.register().await;
    let bytes = fresh_fmu("VanDerPol", "3.0", "alice's copy");
    let resp = app.upload_fmu(&alice.api_key, bytes.clone()).await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    use sha2::Digest;
    assert_eq!(id, hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(created["file_name"], "model.fmu");
    assert_eq!(created["model_name"], "VanDerPol");

    let again = app.upload_fmu(&alice.api_key, bytes.clone()).await;
    assert_eq!(again.status(), 200, "the same bytes twice are a no-op");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], id.as_str());

    let resp = app.get(&format!("/api/v1/fmus/{id}"), &bob.api_key).await;
    assert_eq!(resp.status(), 404, "another user's upload is invisible");
    let bobs = app.get_json("/api/v1/fmus", &bob.api_key).await;
    assert!(
        bobs.as_array()
            .unwrap()
            .iter()
            .all(|f| f["id"] != id.as_str())
    );

    // Bob uploading the same bytes shares the stored file but gets his own entry; the answer
    // (201, as for any FMU new among his) does not tell him that someone had them already.
    let resp = app.upload_fmu(&bob.api_key, bytes).await;
    assert_eq!(resp.status(), 201);
    let resp = app
        .delete(&format!("/api/v1/fmus/{id}"), &alice.api_key)
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        app.get(&format!("/api/v1/fmus/{id}"), &alice.api_key)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.get(&format!("/api/v1/fmus/{id}"), &bob.api_key)
            .await
            .status(),
        200
    );
    assert!(
        app.data_dir.join("fmus").join(format!("{id}.fmu")).exists(),
        "still used by bob"
    );
    // An id is hex in either case; the files go too, whichever case it was named in.
    let resp = app
        .delete(
            &format!("/api/v1/fmus/{}", id.to_ascii_uppercase()),
            &bob.api_key,
        )
        .await;
    assert_eq!(resp.status(), 204);
    assert!(
        !app.data_dir.join("fmus").join(format!("{id}.fmu")).exists(),
        "removed with its last user"
    );
    assert!(
        !app.data_dir.join("cache/fmus").join(&id).exists(),
        "its extracted tree too"
    );
    let resp = app
        .delete("/api/v1/fmus/lib:BouncingBall", &bob.api_key)
        .await;
    assert_eq!(resp.status(), 404, "library models cannot be deleted");
}

#[tokio::test]
async fn hostile_or_broken_archives_are_refused_with_a_reason_and_nothing_is_stored() {
    let app = spawn_app().await;
    let account = app.register().await;
    let before = stored_files(&app);
    let md = br#"<?xml version="1.0"?><fmiModelDescription fmiVersion="3.0" modelName="M" instantiationToken="x"><CoSimulation modelIdentifier="M"/><ModelVariables><Float64 name="time" valueReference="0" causality="independent" variability="continuous"/></ModelVariables><ModelStructure/></fmiModelDescription>"#;
    let bomb_payload = vec![0u8; 20 << 20];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"this is not a zip file".to_vec(), "not a zip"),
        (
            zip_of(&[("../evil.txt", b"x"), ("modelDescription.xml", md)]),
            "escapes",
        ),
        (
            zip_of(&[("/etc/evil", b"x"), ("modelDescription.xml", md)]),
            "escapes",
        ),
        (
            zip_of(&[("resources/a.txt", b"x")]),
            "modelDescription.xml is missing",
        ),
        (
            zip_of(&[(
                "modelDescription.xml",
                b"<fmiModelDescription fmiVersion=\"3.0\"><unclosed>",
            )]),
            "modelDescription",
        ),
        (
            zip_of(&[
                ("modelDescription.xml", md),
                ("binaries/x86_64-windows/M.dll", b"MZ"),
            ]),
            "x86_64-windows",
        ),
        (
            zip_of(&[("modelDescription.xml", md), ("bomb.bin", &bomb_payload)]),
            "zip bomb",
        ),
    ];
    for (bytes, message) in cases {
        let resp = app.upload_fmu(&account.api_key, bytes).await;
        let status = resp.status().as_u16();
        let err: Value = resp.json().await.unwrap();
        assert!((400..500).contains(&status), "{message}: {status} {err}");
        assert!(
            err["message"].as_str().unwrap().contains(message),
            "expected '{message}' in {err}"
        );
    }
    // A symbolic link entry.
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    out.start_file(
        "modelDescription.xml",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    out.write_all(md).unwrap();
    out.add_symlink(
        "binaries/x86_64-linux/M.so",
        "/etc/passwd",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    let resp = app
        .upload_fmu(&account.api_key, out.finish().unwrap().into_inner())
        .await;
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    assert!(err["message"].as_str().unwrap().contains("link"), "{err}");

    assert_eq!(stored_files(&app), before, "nothing was left behind");
    let list = app.get_json("/api/v1/fmus", &account.api_key).await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|f| f["library_id"].is_string())
    );
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_refused() {
    let app = spawn_app_with(|c| c.max_upload_bytes = 64 << 10).await;
    let account = app.register().await;
    let resp = app.upload_fmu(&account.api_key, vec![7u8; 200 << 10]).await;
    assert_eq!(resp.status(), 413);
    let resp = upload(&app, &account.api_key, "/fmus", vec![7u8; 200 << 10]).await;
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn the_compatibility_fmu_routes_keep_their_shapes() {
    let app = spawn_app().await;
    let account = app.register().await;
    let resp = upload(
        &app,
        &account.api_key,
        "/fmus",
        fresh_fmu("Dahlquist", "2.0", "compat"),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    for field in ["id", "fmi_version", "model_name", "guid", "sha256"] {
        assert!(created[field].is_string(), "{field} in {created}");
    }
    assert_eq!(created["fmi_version"], "2.0");
    let id = created["id"].as_str().unwrap();
    let vars: Value = api_client()
        .get(app.at(&format!("/fmus/{id}/variables")))
        .header("X-API-Key", &account.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let x = vars
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "x")
        .unwrap();
    assert_eq!(x["declaredType"], "Real");
    assert!(x["causality"].is_string() && x["variability"].is_string());
    let by_hash = app
        .get_json(&format!("/fmus/by-hash/{id}"), &account.api_key)
        .await;
    assert_eq!(by_hash["sha256"], id);
    let vars = app
        .get_json("/fmus/lib:BouncingBall/variables", &account.api_key)
        .await;
    assert!(vars.as_array().unwrap().iter().any(|v| v["name"] == "h"));
    let lib = app.get_json("/library?query=ball", &account.api_key).await;
    let ids: Vec<&str> = lib
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["lib:BouncingBall", "lib:BouncingBall@fmi2"]);
    assert_eq!(
        app.get("/fmus/by-hash/xyz", &account.api_key)
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn the_library_page_lists_models_and_shows_variables() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = crate::common::browser();
    let csrf = app.browser_login(&client, &account).await;
    let page = client
        .get(app.at("/library"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("lib:VanDerPol@fmi2"), "{page}");
    let model = page_text(&client, app.at("/library/lib:BouncingBall")).await;
    assert!(
        model.contains("<code>h</code>") && model.contains("Float64"),
        "{model}"
    );
    // Upload through the page's form (multipart, the token as the field before the file).
    let part = reqwest::multipart::Part::bytes(fresh_fmu("Integrator", "3.0", "page"))
        .file_name("mine.fmu");
    let resp = client
        .post(app.at("/library"))
        .multipart(
            reqwest::multipart::Form::new()
                .text("csrf_token", csrf.clone())
                .part("file", part),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let page = client
        .get(app.at("/library"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("uploaded"), "{page}");
    // Without the token: refused.
    let part = reqwest::multipart::Part::bytes(fresh_fmu("Integrator", "3.0", "no token"))
        .file_name("x.fmu");
    let resp = client
        .post(app.at("/library"))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

/// The upload form has one part, `file`; another is refused (as unknown JSON fields are), not
/// ignored.
#[tokio::test]
async fn an_upload_form_with_another_part_is_refused() {
    let app = spawn_app().await;
    let account = app.register().await;
    let part = reqwest::multipart::Part::bytes(fresh_fmu("VanDerPol", "3.0", "extra part"))
        .file_name("model.fmu");
    let form = reqwest::multipart::Form::new()
        .part("file", part)
        .text("comment", "hello");
    let resp = crate::common::api_client()
        .post(app.at("/api/v1/fmus"))
        .bearer_auth(&account.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "invalid_request", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("comment"),
        "{body}"
    );
    let fmus = app.get_json("/api/v1/fmus", &account.api_key).await;
    assert!(
        fmus.as_array()
            .unwrap()
            .iter()
            .all(|f| f["file_name"].is_null())
    );
}

#[tokio::test]
async fn an_fmu_listing_an_entry_twice_with_identical_bytes_is_stored_with_a_warning_and_runs() {
    let app = spawn_app().await;
    let account = app.register().await;
    // What some exporters write: a file under extra/ listed twice, byte for byte the same.
    let notes = b"exported twice by the tool".repeat(20);
    let bytes = archives::with_entry_twice(
        archives::library_fmu("BouncingBall", "3.0"),
        "extra/notes.txt",
        &notes,
        &notes,
    );
    let warning = json!([{
        "code": "duplicate_entry",
        "message": "entry 'extra/notes.txt' appears 2 times in the archive with identical contents; it was extracted once"
    }]);

    let resp = app.upload_fmu(&account.api_key, bytes.clone()).await;
    assert_eq!(resp.status(), 201);
    let fmu: Value = resp.json().await.unwrap();
    assert_eq!(fmu["warnings"], warning, "{fmu}");
    let id = fmu["id"].as_str().unwrap().to_string();
    let extracted = app.data_dir.join("cache/fmus").join(&id).join("extra");
    assert_eq!(std::fs::read(extracted.join("notes.txt")).unwrap(), notes);
    assert_eq!(std::fs::read_dir(&extracted).unwrap().count(), 1);

    // The warning stays with the FMU: the same bytes again (not extracted again), and a read.
    let again = app.upload_fmu(&account.api_key, bytes).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["warnings"], warning);
    let read = app
        .get_json(&format!("/api/v1/fmus/{id}"), &account.api_key)
        .await;
    assert_eq!(read["warnings"], warning);
    // A clean FMU says so with an empty list, never null or nothing.
    let library = app
        .get_json("/api/v1/fmus/lib:BouncingBall", &account.api_key)
        .await;
    assert_eq!(library["warnings"], json!([]));
    // The model's page in the dashboard shows it too.
    let client = crate::common::browser();
    app.browser_login(&client, &account).await;
    let page = page_text(&client, app.at(&format!("/library/{id}"))).await;
    assert!(
        page.contains("<strong class=\"severity warning\">warning</strong> <code>duplicate_entry</code><br><code class=\"subject\">extra/notes.txt</code>: entry 'extra/notes.txt' appears 2 times in the archive"),
        "{page}"
    );

    let run = app
        .run(
            &account.api_key,
            &json!({ "fmu_id": id, "stop_time": 0.4, "output_interval": 0.1 }),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let result = app
        .get_json(run["result_url"].as_str().unwrap(), &account.api_key)
        .await;
    let h = result["columns"]["h"].as_array().expect("h recorded");
    // Dropped from 1 m, falling freely until t = 0.4 (it lands at 0.45): h = 1 - g t^2 / 2.
    let last = h.last().unwrap().as_f64().unwrap();
    assert!((last - (1.0 - 9.81 * 0.16 / 2.0)).abs() < 1e-6, "{h:?}");
}

#[tokio::test]
async fn an_fmu_listing_an_entry_twice_with_different_bytes_is_refused_naming_it() {
    let app = spawn_app().await;
    let account = app.register().await;
    let before = stored_files(&app);
    let bouncing_ball = archives::library_fmu("BouncingBall", "3.0");
    for (second, difference) in [
        (&b"version two"[..], "same size, different CRC-32"),
        (&b"version 2"[..], "11 bytes and 9 bytes"),
    ] {
        let bytes =
            archives::with_entry_twice(bouncing_ball, "extra/notes.txt", b"version one", second);
        let resp = app.upload_fmu(&account.api_key, bytes).await;
        assert_eq!(resp.status(), 422);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["code"], "invalid_request");
        assert_eq!(
            err["message"],
            format!("entry 'extra/notes.txt' appears twice with different contents ({difference})")
        );
    }
    assert_eq!(stored_files(&app), before, "nothing was left behind");
}

#[tokio::test]
async fn an_fmu_with_only_scheduled_execution_is_refused_for_what_it_is() {
    let app = spawn_app().await;
    let account = app.register().await;
    let before = stored_files(&app);
    let bouncing_ball = archives::library_fmu("BouncingBall", "3.0");
    // Its binary is a real one, built from our sources; only the interface it declares changes.
    let scheduled = archives::with_interfaces(
        bouncing_ball,
        r#"<ScheduledExecution modelIdentifier="BouncingBall" canGetAndSetFMUState="true"/>"#,
    );
    let resp = app.upload_fmu(&account.api_key, scheduled).await;
    assert_eq!(resp.status(), 422);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(
        err["message"],
        "this FMU implements only Scheduled Execution, which this server does not run yet (it runs Co-Simulation and Model Exchange)"
    );

    // Declaring no interface at all is refused, lenient or not: there is nothing to run.
    let none = archives::with_interfaces(bouncing_ball, "");
    for query in ["", "?lenient=true"] {
        let resp = app
            .upload_fmu_with(&account.api_key, query, none.clone())
            .await;
        assert_eq!(resp.status(), 422);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(
            err["message"],
            "the FMU implements neither Co-Simulation nor Model Exchange, so this server cannot run it"
        );
    }
    assert_eq!(stored_files(&app), before, "nothing was left behind");

    // Scheduled Execution beside Co-Simulation is fine: the server runs the Co-Simulation.
    let both = archives::with_interfaces(
        bouncing_ball,
        r#"<CoSimulation modelIdentifier="BouncingBall" canHandleVariableCommunicationStepSize="true"/><ScheduledExecution modelIdentifier="BouncingBall"/>"#,
    );
    let resp = app.upload_fmu(&account.api_key, both).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
}
