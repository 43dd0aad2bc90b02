//! Registration, login and logout, in the browser and over JSON.

use serde_json::{Value, json};

use crate::common::{Api, api_client, browser, page_text, spawn_app, spawn_app_with, unique_email};

#[tokio::test]
async fn registering_over_json_returns_the_account_a_key_and_the_free_credits() {
    let app = spawn_app().await;
    let email = unique_email();
    let resp = api_client()
        .post(app.at("/register"))
        .json(&json!({ "email": email, "password": "longenough" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["email"], email.as_str());
    assert_eq!(body["credits"], 25);
    assert!(body["user_id"].as_str().unwrap().starts_with("usr_"));
    let key = body["api_key"].as_str().unwrap();
    assert!(key.starts_with("fmugw_"));
    // The key works at once, and the grant is in the ledger.
    let me = app.get_json("/api/v1/me", key).await;
    assert_eq!(me["credits"], 25);
    let conn = app.state.store.conn().unwrap();
    let (kind, delta): (String, i64) = conn
        .query_row(
            "SELECT kind, delta FROM credit_ledger WHERE user_id = ?1",
            [body["user_id"].as_str().unwrap()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((kind.as_str(), delta), ("grant", 25));
}

#[tokio::test]
async fn the_free_grant_is_configurable() {
    let app = spawn_app_with(|c| c.free_credits = 3.into()).await;
    let account = app.register().await;
    let me = app.get_json("/api/v1/me", &account.api_key).await;
    assert_eq!(me["credits"], 3);
}

#[tokio::test]
async fn registering_with_only_an_email_works_for_api_clients() {
    let app = spawn_app().await;
    let resp = api_client()
        .post(app.at("/register"))
        .json(&json!({ "email": unique_email() }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert!(body["api_key"].as_str().unwrap().starts_with("fmugw_"));
}

#[tokio::test]
async fn registering_twice_with_the_same_email_is_rejected_regardless_of_case() {
    let app = spawn_app().await;
    let account = app.register().await;
    let shouting = account.email.to_uppercase();
    let resp = api_client()
        .post(app.at("/register"))
        .json(&json!({ "email": shouting, "password": "another password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "conflict");
    assert!(body["message"].as_str().unwrap().contains("already exists"));
    let users: i64 = app.count("users", []);
    assert_eq!(users, 1);
}

#[tokio::test]
async fn bad_registrations_get_clear_errors_and_create_nothing() {
    let app = spawn_app().await;
    let client = api_client();
    let cases = [
        (
            json!({ "email": unique_email(), "password": "short" }),
            422,
            "at least 8",
        ),
        (
            json!({ "email": "not-an-email", "password": "longenough" }),
            422,
            "not a valid email",
        ),
        (json!({ "email": 42, "password": "longenough" }), 400, ""),
        (json!({ "password": "longenough" }), 400, ""),
    ];
    for (body, status, message) in cases {
        let resp = client
            .post(app.at("/register"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{body}");
        let err: Value = resp.json().await.unwrap();
        assert!(err["code"].is_string(), "{err}");
        assert!(err["message"].as_str().unwrap().contains(message), "{err}");
    }
    let resp = client
        .post(app.at("/register"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "invalid_request");
    let users: i64 = app.count("users", []);
    assert_eq!(users, 0);
}

#[tokio::test]
async fn signing_up_in_the_browser_logs_in_with_a_hardened_cookie() {
    let app = spawn_app().await;
    let client = browser();
    let email = unique_email();
    let resp = client
        .post(app.at("/register"))
        .form(&[
            ("email", email.as_str()),
            ("name", "Grace"),
            ("password", "longenough"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/dashboard");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("fmugw_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain-http localhost must not set Secure: {cookie}"
    );
    let page = page_text(&client, app.at("/dashboard")).await;
    assert!(page.contains("Hello, Grace"), "{page}");
    assert!(
        page.contains(r#"<p class="big" id="credits">25</p>"#),
        "{page}"
    );
}

#[tokio::test]
async fn behind_https_the_cookie_is_secure_and_host_prefixed() {
    let app = spawn_app_with(|c| c.secure_cookies = true).await;
    let resp = browser()
        .post(app.at("/register"))
        .form(&[
            ("email", unique_email().as_str()),
            ("password", "longenough"),
        ])
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("__Host-fmugw_session="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("Path=/"),
        "{cookie}"
    );
}

#[tokio::test]
async fn a_short_password_in_the_form_shows_the_error_and_keeps_the_email() {
    let app = spawn_app().await;
    let resp = browser()
        .post(app.at("/register"))
        .form(&[("email", "kept@example.com"), ("password", "short")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let page = resp.text().await.unwrap();
    assert!(page.contains("at least 8 characters"), "{page}");
    assert!(page.contains(r#"value="kept@example.com""#), "{page}");
}

#[tokio::test]
async fn logging_in_over_json_works_with_a_password_or_a_key() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = api_client();

    let resp = client
        .post(app.at("/login"))
        .json(&json!({ "email": account.email, "password": account.password }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["user_id"], account.user_id.as_str());
    assert_eq!(body["credits"], 25);
    let minted = body["api_key"].as_str().unwrap();
    assert_eq!(body["token"], minted);
    let me = app.get("/api/v1/me", minted).await;
    assert_eq!(me.status(), 200);

    let body: Value = client
        .post(app.at("/login"))
        .json(&json!({ "api_key": account.api_key }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["api_key"], account.api_key.as_str());
    assert_eq!(body["user_id"], account.user_id.as_str());
}

#[tokio::test]
async fn wrong_credentials_are_refused_the_same_way_whatever_was_wrong() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = api_client();
    for body in [
        json!({ "email": account.email, "password": "wrong password" }),
        json!({ "email": "nobody@example.com", "password": "wrong password" }),
    ] {
        let resp = client
            .post(app.at("/login"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["code"], "bad_credentials");
        assert_eq!(err["message"], "wrong email or password");
    }
    let resp = client
        .post(app.at("/login"))
        .json(&json!({ "api_key": "fmugw_not-a-key" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client
        .post(app.at("/login"))
        .json(&json!({ "email": account.email }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = browser()
        .post(app.at("/login"))
        .form(&[("email", account.email.as_str()), ("password", "nope nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("wrong email or password")
    );
}

#[tokio::test]
async fn the_browser_can_log_in_with_an_api_key() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = browser();
    let resp = client
        .post(app.at("/login"))
        .form(&[("api_key", account.api_key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let resp = client.get(app.at("/dashboard")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn pages_need_a_session_and_logout_ends_it() {
    let app = spawn_app().await;
    let account = app.register().await;
    for path in [
        "/dashboard",
        "/api-keys",
        "/usage",
        "/runs",
        "/library",
        "/billing",
    ] {
        let resp = browser()
            .get(app.at(path))
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303, "{path}");
        assert_eq!(resp.headers()["location"], "/login", "{path}");
    }
    let client = browser();
    let csrf = app.browser_login(&client, &account).await;
    for path in [
        "/dashboard",
        "/api-keys",
        "/usage",
        "/runs",
        "/library",
        "/billing",
    ] {
        assert_eq!(
            client.get(app.at(path)).send().await.unwrap().status(),
            200,
            "{path}"
        );
    }
    let resp = client
        .post(app.at("/logout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(
        resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let sessions: i64 = app.count("sessions", []);
    assert_eq!(sessions, 0, "logout deletes the session server-side");
    assert_eq!(
        client
            .get(app.at("/dashboard"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
}

#[tokio::test]
async fn a_copied_cookie_dies_with_the_session() {
    let app = spawn_app().await;
    let account = app.register().await;
    let first = browser();
    let resp = first
        .post(app.at("/login"))
        .form(&[
            ("email", account.email.as_str()),
            ("password", account.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // Another browser logs in and logs out everywhere.
    let second = browser();
    let csrf = app.browser_login(&second, &account).await;
    second
        .post(app.at("/logout"))
        .form(&[("csrf_token", csrf.as_str()), ("everywhere", "1")])
        .send()
        .await
        .unwrap();
    let resp = api_client()
        .get(app.at("/dashboard"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "the first browser's session ended too");
}

#[tokio::test]
async fn the_root_page_shows_visitors_the_landing_page_and_sends_users_to_the_dashboard() {
    let app = spawn_app().await;
    let resp = browser().get(app.at("/")).send().await.unwrap();
    assert_eq!(
        resp.status(),
        200,
        "the landing page (tests/api/account.rs)"
    );
    let account = app.register().await;
    let client = browser();
    app.browser_login(&client, &account).await;
    let resp = client.get(app.at("/")).send().await.unwrap();
    assert_eq!(resp.headers()["location"], "/dashboard");
}
