//! API keys: create, list, revoke, attenuate, verify with the public key.

use std::str::FromStr;

use biscuit_auth::macros::block;
use biscuit_auth::{Biscuit, PublicKey};
use serde_json::{Value, json};

use crate::common::{Api, TestApp, api_client, browser, page_text, spawn_app};

pub(crate) async fn public_key(app: &TestApp) -> PublicKey {
    let body: Value = api_client()
        .get(app.at("/api/v1/keys/public-key"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["algorithm"], "ed25519");
    PublicKey::from_str(body["public_key"].as_str().unwrap()).unwrap()
}

/// The holder's offline attenuation: append a block with `code` using the biscuit library.
pub(crate) fn attenuate(
    key: &str,
    public: PublicKey,
    block: biscuit_auth::builder::BlockBuilder,
) -> String {
    let raw = key.strip_prefix("fmugw_").unwrap();
    let token = Biscuit::from_base64(raw, public).unwrap();
    token.append(block).unwrap().to_base64().unwrap()
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked_and_revocation_is_immediate() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = api_client();

    let resp = app
        .post_json("/api/v1/keys", &account.api_key, &json!({ "label": "CI" }))
        .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let new_key = created["api_key"].as_str().unwrap().to_string();
    let id = created["key"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["key"]["label"], "CI");
    assert_eq!(created["key"]["active"], true);

    // The token itself is never stored.
    let stored: Vec<String> = app
        .state
        .store
        .conn()
        .unwrap()
        .prepare("SELECT id || label FROM api_keys")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let stored = stored.concat();
    assert!(!stored.contains(&new_key[10..40]));

    assert_eq!(
        client
            .get(app.at("/api/v1/me"))
            .header("X-API-Key", &new_key)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let list = app.get_json("/api/v1/keys", &account.api_key).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    assert!(
        listed["last_used_at"].is_string(),
        "using the key recorded its last use: {listed}"
    );

    let resp = app
        .post(&format!("/api/v1/keys/{id}/revoke"), &account.api_key)
        .await;
    assert_eq!(resp.status(), 200);
    let revoked: Value = resp.json().await.unwrap();
    assert_eq!(revoked["active"], false);
    assert!(revoked["revoked_at"].is_string());

    let resp = client
        .get(app.at("/api/v1/me"))
        .header("X-API-Key", &new_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "revoked_api_key");
    // The other key still works.
    assert_eq!(app.get("/api/v1/me", &account.api_key).await.status(), 200);
}

#[tokio::test]
async fn another_users_key_cannot_be_revoked_or_seen() {
    let app = spawn_app().await;
    let alice = app.register().await;
    let bob = app.register().await;
    let bobs = app.get_json("/api/v1/keys", &bob.api_key).await;
    let bob_key_id = bobs[0]["id"].as_str().unwrap();
    let resp = app
        .post(&format!("/api/v1/keys/{bob_key_id}/revoke"), &alice.api_key)
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(app.get("/api/v1/me", &bob.api_key).await.status(), 200);
    let alices = app.get_json("/api/v1/keys", &alice.api_key).await;
    assert!(
        alices
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["id"] != bob_key_id)
    );
}

#[tokio::test]
async fn bad_keys_are_refused_with_a_code_that_says_why() {
    let app = spawn_app().await;
    let client = api_client();
    let cases: [(Option<&str>, &str); 3] = [
        (None, "missing_api_key"),
        (Some("fmugw_AAAA"), "invalid_api_key"),
        (Some("Basic abc"), "missing_api_key"),
    ];
    for (header, code) in cases {
        let mut req = client.get(app.at("/api/v1/usage"));
        if let Some(h) = header {
            req = if h.starts_with("Basic") {
                req.header("Authorization", h)
            } else {
                req.bearer_auth(h)
            };
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["code"], code, "{err}");
    }
}

#[tokio::test]
async fn a_key_attenuated_offline_is_honoured_and_revoked_with_its_parent() {
    let app = spawn_app().await;
    let account = app.register().await;
    let public = public_key(&app).await;
    let read_only = attenuate(
        &account.api_key,
        public,
        block!(r#"check if operation("read_usage");"#),
    );
    let client = api_client();

    // Sent without our prefix, as the biscuit CLI would print it.
    let resp = app.get("/api/v1/usage", &read_only).await;
    assert_eq!(resp.status(), 200);
    let resp = app.get("/api/v1/keys", &read_only).await;
    assert_eq!(resp.status(), 403);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "key_restricted");
    assert!(
        err["message"].as_str().unwrap().contains("attenuated"),
        "{err}"
    );
    // A restricted key cannot be turned into a full dashboard session.
    let resp = client
        .post(app.at("/login"))
        .json(&json!({ "api_key": read_only }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    let keys = app.get_json("/api/v1/keys", &account.api_key).await;
    let parent = keys[0]["id"].as_str().unwrap();
    app.post(&format!("/api/v1/keys/{parent}/revoke"), &account.api_key)
        .await;
    let resp = app.get("/api/v1/usage", &read_only).await;
    assert_eq!(
        resp.status(),
        401,
        "revoking the parent revokes its attenuations"
    );
}

#[tokio::test]
async fn an_attenuated_expiry_is_enforced() {
    let app = spawn_app().await;
    let account = app.register().await;
    let public = public_key(&app).await;
    let expired = attenuate(
        &account.api_key,
        public,
        block!(r#"check if time($t), $t <= 2020-01-01T00:00:00Z;"#),
    );
    let future = attenuate(
        &account.api_key,
        public,
        block!(r#"check if time($t), $t <= 2100-01-01T00:00:00Z;"#),
    );
    assert_eq!(app.get("/api/v1/me", &expired).await.status(), 403);
    assert_eq!(app.get("/api/v1/me", &future).await.status(), 200);
}

/// An attenuated key gives less than its parent: it cannot mint a fresh, unrestricted key or
/// open a login (a browser session, or the compatibility login's new key), whatever its
/// checks say. Before this, an expiry-only attenuation minted a key that never expired.
#[tokio::test]
async fn an_attenuated_key_cannot_mint_keys_or_log_in() {
    let app = spawn_app().await;
    let account = app.register().await;
    let public = public_key(&app).await;
    let until_2100 = attenuate(
        &account.api_key,
        public,
        block!(r#"check if time($t), $t <= 2100-01-01T00:00:00Z;"#),
    );
    let deny_simulate = attenuate(
        &account.api_key,
        public,
        block!(r#"check if operation($op), $op != "simulate";"#),
    );
    let client = api_client();
    for token in [&until_2100, &deny_simulate] {
        let resp = app
            .post_json("/api/v1/keys", token, &json!({ "label": "escape" }))
            .await;
        assert_eq!(resp.status(), 403);
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["code"], "key_restricted", "{err}");
        let resp = client
            .post(app.at("/api_keys/new"))
            .header("X-API-Key", token.as_str())
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
        let resp = client
            .post(app.at("/login"))
            .json(&json!({ "api_key": token }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "the compatibility login");
        let resp = browser()
            .post(app.at("/login"))
            .form(&[("api_key", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_ne!(resp.status(), 303, "no browser session");
        // What the attenuation allows still works.
        let resp = app.get("/api/v1/me", token).await;
        assert_eq!(resp.status(), 200);
    }
    // No key was created by any of it.
    let keys = app.get_json("/api/v1/keys", &account.api_key).await;
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");
}

#[tokio::test]
async fn an_attenuated_block_cannot_claim_another_user() {
    let app = spawn_app().await;
    let alice = app.register().await;
    let bob = app.register().await;
    let public = public_key(&app).await;
    let bob_id = bob.user_id.clone();
    let forged = attenuate(&alice.api_key, public, block!(r#"user({bob_id});"#));
    let me = app.get_json("/api/v1/me", &forged).await;
    assert_eq!(me["user_id"], alice.user_id.as_str());
}

#[tokio::test]
async fn the_public_key_verifies_issued_keys_and_rejects_others() {
    let app = spawn_app().await;
    let account = app.register().await;
    let public = public_key(&app).await;
    Biscuit::from_base64(account.api_key.strip_prefix("fmugw_").unwrap(), public).unwrap();
    let other = biscuit_auth::KeyPair::new();
    let foreign = Biscuit::builder()
        .fact(r#"user("x")"#)
        .unwrap()
        .build(&other)
        .unwrap()
        .to_base64()
        .unwrap();
    let resp = app.get("/api/v1/me", &foreign).await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn the_compatibility_key_routes_keep_their_shapes() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = api_client();
    let resp = client
        .post(app.at("/api_keys/new"))
        .header("X-API-Key", &account.api_key)
        .json(&json!({ "label": "legacy" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    for field in ["id", "label", "api_key", "created_at"] {
        assert!(created[field].is_string(), "{field} in {created}");
    }
    // An empty body is fine too.
    let resp = client
        .post(app.at("/api_keys/new"))
        .header("X-API-Key", &account.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let list: Value = client
        .get(app.at("/api_keys/"))
        .header("X-API-Key", &account.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    let first = &list[0];
    for field in ["id", "label", "created_at", "revoked", "run_count"] {
        assert!(!first[field].is_null(), "{field} in {first}");
    }
    let id = created["id"].as_str().unwrap();
    let resp = client
        .post(app.at(&format!("/api_keys/revoke/{id}")))
        .header("X-API-Key", &account.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["revoked"], true);
    let resp = client
        .get(app.at("/usage/"))
        .header("X-API-Key", created["api_key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client
        .post(app.at("/api_keys/revoke/key_doesnotexist"))
        .header("X-API-Key", &account.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn an_over_long_label_is_refused_without_creating_a_key() {
    let app = spawn_app().await;
    let account = app.register().await;
    let resp = app
        .post_json(
            "/api/v1/keys",
            &account.api_key,
            &json!({ "label": "x".repeat(65) }),
        )
        .await;
    assert_eq!(resp.status(), 400, "the spec states the bound");
    let err: Value = resp.json().await.unwrap();
    assert!(err["message"].as_str().unwrap().contains("64"));
    let list = app.get_json("/api/v1/keys", &account.api_key).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_key_stops_working_when_it_expires_even_after_it_was_used() {
    let app = spawn_app().await;
    let account = app.register().await;
    let expires = std::time::SystemTime::now() + std::time::Duration::from_secs(3);
    let key = fmu_gateway::domain::keys::create(
        &app.state,
        &account.user_id.as_str().into(),
        Some("short-lived"),
        Some(expires),
    )
    .await
    .unwrap();
    assert_eq!(app.get("/api/v1/me", &key.token).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    let resp = app.get("/api/v1/me", &key.token).await;
    assert_eq!(resp.status(), 401);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["code"], "expired_api_key");
}

/// The key id a token names, read with the biscuit library from its authority block.
fn key_id_of(key: &str, public: PublicKey) -> String {
    let token = Biscuit::from_base64(key.strip_prefix("fmugw_").unwrap(), public).unwrap();
    let source = token.print_block_source(0).unwrap();
    let start = source
        .find("key(\"")
        .expect("the authority block names the key")
        + 5;
    source[start..].split('"').next().unwrap().to_string()
}

/// The "Browser sessions" cell of a key's row on the keys page.
fn sessions_cell(page: &str, key_id: &str) -> String {
    let row = &page[page
        .find(&format!("id=\"key-{key_id}\""))
        .expect("the key's row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    let cell = row
        .split("<td class=\"num\"")
        .nth(2)
        .expect("the sessions cell");
    let text = &cell[cell.find('>').unwrap() + 1..];
    text[..text.find("</td>").unwrap()].trim().to_string()
}

#[tokio::test]
async fn a_browser_session_opened_with_a_key_ends_when_the_key_is_revoked() {
    let app = spawn_app().await;
    let account = app.register().await;
    let public = public_key(&app).await;
    let created: Value = app.create_key(&account.api_key, "laptop").await;
    let key = created["api_key"].as_str().unwrap().to_string();
    let key_id = key_id_of(&key, public);
    assert_eq!(created["key"]["id"], key_id.as_str());

    // One browser logs in with the key, another with the password.
    let by_key = browser();
    let resp = by_key
        .post(app.at("/login"))
        .form(&[("api_key", key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let by_password = browser();
    app.browser_login(&by_password, &account).await;

    // The keys page says which sessions came from which key.
    let page = page_text(&by_password, app.at("/api-keys")).await;
    assert!(page.contains("Browser sessions"));
    assert_eq!(sessions_cell(&page, &key_id), "1");
    let first_key = key_id_of(&account.api_key, public);
    assert_eq!(sessions_cell(&page, &first_key), "0");
    assert_eq!(
        by_key
            .get(app.at("/api-keys"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Revoking the key ends its session at once; the password session lives on.
    let resp = app
        .post(&format!("/api/v1/keys/{key_id}/revoke"), &account.api_key)
        .await;
    assert_eq!(resp.status(), 200);
    let resp = by_key.get(app.at("/api-keys")).send().await.unwrap();
    assert_eq!(resp.status(), 303, "the key's session is over");
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
    let page = by_password.get(app.at("/api-keys")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(sessions_cell(&page.text().await.unwrap(), &key_id), "0");
}

#[tokio::test]
async fn a_browser_session_opened_with_a_key_ends_when_the_key_expires() {
    let app = spawn_app().await;
    let account = app.register().await;
    let expires = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    let key = fmu_gateway::domain::keys::create(
        &app.state,
        &account.user_id.as_str().into(),
        Some("brief"),
        Some(expires),
    )
    .await
    .unwrap();
    let client = browser();
    let resp = client
        .post(app.at("/login"))
        .form(&[("api_key", key.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        client
            .get(app.at("/api-keys"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let resp = client.get(app.at("/api-keys")).send().await.unwrap();
    assert_eq!(resp.status(), 303, "the session ended with its key");
}
