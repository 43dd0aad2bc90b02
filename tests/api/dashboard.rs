//! The dashboard's forms without JavaScript (plain posts with the CSRF field), as a browser
//! with scripts off sends them: uploads that name their file when refused, deleting an
//! upload, marking the primary key, and the credit history read one line per run.

use serde_json::{Value, json};

use crate::common::{Api, browser, fresh_fmu, page_text, spawn_app};

/// Posts a plain form with the session's CSRF token; the answer is not followed.
async fn post_form(
    client: &reqwest::Client,
    url: String,
    csrf: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("csrf_token", csrf)];
    form.extend_from_slice(fields);
    client.post(url).form(&form).send().await.unwrap()
}

#[tokio::test]
async fn a_refused_upload_names_its_file_and_keeps_the_library_page() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = browser();
    let csrf = app.browser_login(&client, &account).await;
    let part = reqwest::multipart::Part::bytes(b"not a zip at all".to_vec())
        .file_name("thermal-model.fmu");
    let resp = client
        .post(app.at("/library"))
        .multipart(
            reqwest::multipart::Form::new()
                .text("csrf_token", csrf)
                .part("file", part),
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("“thermal-model.fmu” was not uploaded:"),
        "{page}"
    );
    assert!(
        page.contains("Check that it is an FMU"),
        "what to do: {page}"
    );
    assert!(
        page.contains("<h1>Library</h1>") && page.contains("Upload an FMU"),
        "the library page again, with its form: {page}"
    );
}

#[tokio::test]
async fn an_upload_is_confirmed_by_name_and_can_be_deleted_but_a_built_in_model_cannot() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = browser();
    let csrf = app.browser_login(&client, &account).await;
    let part = reqwest::multipart::Part::bytes(fresh_fmu("Integrator", "3.0", "delete me"))
        .file_name("integrator.fmu");
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
    let model_page = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(model_page.ends_with("?uploaded=1"), "{model_page}");
    let page = page_text(&client, app.at(&model_page)).await;
    assert!(page.contains("Integrator was uploaded."), "{page}");
    assert!(page.contains(">Run this model<"), "{page}");
    let id = model_page
        .trim_start_matches("/library/")
        .trim_end_matches("?uploaded=1")
        .to_string();
    assert!(
        page.contains(&format!("/runs?fmu={id}")),
        "Run this model chooses it in the run form: {page}"
    );
    let form = page_text(&client, app.at(&format!("/runs?fmu={id}"))).await;
    assert!(
        form.contains(&format!(r#"value="{id}" selected"#)),
        "the run form has it chosen: {form}"
    );

    // Without the token: refused, and the model stays.
    let resp = client
        .post(app.at(&format!("/library/{id}/delete")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let kept = app
        .get_json(&format!("/api/v1/fmus/{id}"), &account.api_key)
        .await;
    assert_eq!(kept["id"], id.as_str(), "{kept}");

    let resp = post_form(
        &client,
        app.at(&format!("/library/{id}/delete")),
        &csrf,
        &[],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/library?deleted=1");
    // `/library` is also a JSON route: a browser asks for HTML.
    let page = client
        .get(app.at("/library?deleted=1"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("was deleted from your library"), "{page}");
    assert!(!page.contains(&id[..12]), "the row is gone: {page}");
    let gone = crate::common::api_client()
        .get(app.at(&format!("/api/v1/fmus/{id}")))
        .bearer_auth(&account.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    let resp = post_form(
        &client,
        app.at("/library/lib:BouncingBall/delete"),
        &csrf,
        &[],
    )
    .await;
    assert_eq!(resp.status(), 409, "built-in models stay");
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("built-in models cannot be deleted")
    );
}

#[tokio::test]
async fn the_primary_key_is_the_first_one_until_the_user_marks_another() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = browser();
    let csrf = app.browser_login(&client, &account).await;
    let first = app.get_json("/api/v1/keys", &account.api_key).await;
    let first_id = first[0]["id"].as_str().unwrap().to_string();
    let resp = post_form(&client, app.at("/api-keys"), &csrf, &[("label", "CI")]).await;
    assert_eq!(resp.status(), 201);
    let keys = app.get_json("/api/v1/keys", &account.api_key).await;
    let ci = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == "CI")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let primary_card = |page: String| {
        let from = page.find("Primary API key").expect("the card");
        page[from..from + 400].to_string()
    };
    let dashboard = primary_card(page_text(&client, app.at("/dashboard")).await);
    assert!(
        dashboard.contains(&first_id),
        "the newer key does not take over: {dashboard}"
    );

    let resp = post_form(
        &client,
        app.at(&format!("/api-keys/{ci}/primary")),
        &csrf,
        &[],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let dashboard = primary_card(page_text(&client, app.at("/dashboard")).await);
    assert!(dashboard.contains(&ci), "{dashboard}");
    let keys_page = page_text(&client, app.at("/api-keys")).await;
    let row = &keys_page[keys_page.find(&format!("key-{ci}")).unwrap()..];
    assert!(row[..600].contains("Primary"), "{row}");

    // Revoked, it is primary no more: the first key is again.
    let resp = post_form(
        &client,
        app.at(&format!("/api-keys/{ci}/revoke")),
        &csrf,
        &[],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let dashboard = primary_card(page_text(&client, app.at("/dashboard")).await);
    assert!(dashboard.contains(&first_id), "{dashboard}");
    // A revoked key, or another user's, cannot be marked.
    let resp = post_form(
        &client,
        app.at(&format!("/api-keys/{ci}/primary")),
        &csrf,
        &[],
    )
    .await;
    assert_eq!(resp.status(), 404);
    let other = app.register().await;
    let theirs = app.get_json("/api/v1/keys", &other.api_key).await;
    let theirs = theirs[0]["id"].as_str().unwrap();
    let resp = post_form(
        &client,
        app.at(&format!("/api-keys/{theirs}/primary")),
        &csrf,
        &[],
    )
    .await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn the_credit_history_reads_one_line_per_run() {
    let app = spawn_app().await;
    let account = app.register().await;
    let ok: Value = app
        .create_run(
            &account.api_key,
            &json!({"fmu_id": "lib:Dahlquist", "stop_time": 1}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ok["status"], "succeeded", "{ok}");
    let client = browser();
    app.browser_login(&client, &account).await;
    let page = page_text(&client, app.at("/billing")).await;
    let history = &page[page.find(r#"id="credit-history""#).expect("the history")..];
    let history = &history[..history.find("</table>").unwrap()];
    let run_id = ok["id"].as_str().unwrap();
    assert_eq!(
        history.matches(run_id).count(),
        2,
        "one line (its link and its text) for the run: {history}"
    );
    assert!(history.contains("1 credit held, then charged"), "{history}");
    assert!(!history.contains("credit(s)"), "{history}");
    assert_eq!(
        history.matches("<tr>").count(),
        3,
        "header, run, sign-up grant: {history}"
    );
}
