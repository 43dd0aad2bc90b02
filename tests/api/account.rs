//! The landing page and the account page, driven as a browser without JavaScript would:
//! plain form posts carrying the CSRF token, cookies kept per client.

use serde_json::{Value, json};

use crate::common::{
    Account, Api, TestApp, browser, csrf_from, fresh_fmu, page_text, spawn_app, spawn_app_with,
};

/// A browser that says it is `user_agent`, like a real one.
fn browser_as(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .unwrap()
}

const FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

/// What maud escapes, back to text (enough for the pages read here).
fn unescape(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Posts a form from the account page with the session's CSRF token.
async fn post_form(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = page_text(client, app.at("/account")).await;
    let token = csrf_from(&page).expect("the account page carries a CSRF token");
    let mut form: Vec<(&str, &str)> = vec![("csrf_token", &token)];
    form.extend_from_slice(fields);
    client.post(app.at(path)).form(&form).send().await.unwrap()
}

async fn status_of(client: &reqwest::Client, url: String) -> u16 {
    client.get(url).send().await.unwrap().status().as_u16()
}

/// The sessions table's rows: each `<tr>` of the `#sessions` body.
fn session_rows(page: &str) -> Vec<String> {
    let body = page
        .split("<table id=\"sessions\">")
        .nth(1)
        .and_then(|t| t.split("<tbody>").nth(1))
        .and_then(|t| t.split("</tbody>").next())
        .expect("the account page lists the sessions");
    body.split("<tr>").skip(1).map(str::to_string).collect()
}

/// The `/account/sessions/<id>/end` action of a row, if it has one.
fn end_action(row: &str) -> Option<String> {
    let start = row.find("action=\"/account/sessions/")? + "action=\"".len();
    Some(row[start..].split('"').next()?.to_string())
}

#[tokio::test]
async fn visitors_get_a_landing_page_with_a_real_run_and_the_first_run_command() {
    let app = spawn_app().await;
    let resp = browser().get(app.at("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert_eq!(page.matches("<h1").count(), 1, "{page}");
    for link in [
        "href=\"/register\"",
        "href=\"/login\"",
        "href=\"/api/docs\"",
    ] {
        assert!(page.contains(link), "{link} missing");
    }
    // The plot is the engine's: the kept run has the points the settings ask for, it
    // bounces (h falls, then rises again), and the page draws it.
    let run = app.state.showcase.ready().expect("the example ran");
    assert_eq!(run.time.len(), 301, "0..3 s every 0.01 s");
    assert_eq!(run.height[0], 1.0, "BouncingBall starts at h = 1");
    let lowest = run.height.iter().position(|h| *h < 0.05).unwrap();
    assert!(run.height[lowest..].iter().any(|h| *h > 0.3), "no bounce");
    assert!(page.contains("<svg"), "no plot");
    assert!(
        page.contains("lib:BouncingBall"),
        "the plot does not say what it is"
    );

    // The command names this server's public URL and a placeholder, never a key.
    let text = unescape(&page);
    let public = &app.state.config.public_url;
    assert!(
        text.contains(&format!("curl -s {public}/api/v1/runs")),
        "{text}"
    );
    assert!(text.contains("X-API-Key: $FMU_GATEWAY_KEY"), "{text}");
    // What it sends is a run the API accepts and finishes at once.
    let body = text
        .split("-d '")
        .nth(1)
        .and_then(|t| t.split('\'').next())
        .expect("the command sends a body");
    let body: Value = serde_json::from_str(body).unwrap();
    let key = app.register().await.api_key;
    let resp = app.create_run(&key, &body).await;
    assert_eq!(resp.status(), 201);
    let run: Value = resp.json().await.unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");

    // A second visit reuses the kept run (same points, no second simulation to wait for).
    let again = page_text(&browser(), app.at("/")).await;
    assert!(again.contains("301 points"), "{again}");
}

#[tokio::test]
async fn without_a_working_engine_the_landing_page_has_no_plot() {
    // A worker that cannot start: the self-test fails, and the page must not make one up.
    let app = spawn_app_with(|c| c.worker_exe = Some("/nonexistent/fmu-gateway".into())).await;
    let page = page_text(&browser(), app.at("/")).await;
    assert!(page.contains("Your first result in three steps"), "{page}");
    assert!(!page.contains("<svg"), "a plot without a run");
    assert!(app.state.showcase.ready().is_none());
}

#[tokio::test]
async fn a_logged_in_user_goes_to_the_dashboard_which_shows_the_command() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = browser();
    app.browser_login(&client, &account).await;
    let resp = client.get(app.at("/")).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/dashboard");
    let dashboard = unescape(&page_text(&client, app.at("/dashboard")).await);
    let public = &app.state.config.public_url;
    assert!(
        dashboard.contains(&format!("curl -s {public}/api/v1/runs")),
        "{dashboard}"
    );
    assert!(dashboard.contains("$FMU_GATEWAY_KEY"));
    assert!(dashboard.contains("href=\"/api-keys\""));
    // The user menu leads to the account page.
    assert!(dashboard.contains("href=\"/account\""));
}

#[tokio::test]
async fn the_account_page_renames_the_user() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = browser();
    app.browser_login(&client, &account).await;
    let resp = post_form(&app, &client, "/account/name", &[("name", "Grace Hopper")]).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/account?done=renamed");
    let page = page_text(&client, app.at("/account?done=renamed")).await;
    assert!(page.contains("Your name was saved."), "{page}");
    let me = app.get_json("/api/v1/me", &account.api_key).await;
    assert_eq!(me["name"], "Grace Hopper", "{me}");

    // A name that is not one is refused on the page, and nothing changes.
    let long = "x".repeat(101);
    let resp = post_form(&app, &client, "/account/name", &[("name", &long)]).await;
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("at most 100"));
    let me = app.get_json("/api/v1/me", &account.api_key).await;
    assert_eq!(me["name"], "Grace Hopper");

    // Without the CSRF token the form is refused.
    let resp = client
        .post(app.at("/account/name"))
        .form(&[("name", "Mallory")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn changing_the_password_logs_out_the_other_sessions_and_keeps_this_one() {
    let app = spawn_app().await;
    let account = app.register().await;
    let (this, other) = (browser(), browser());
    app.browser_login(&this, &account).await;
    app.browser_login(&other, &account).await;

    // The current password is required.
    let new = "a much longer passphrase";
    let resp = post_form(
        &app,
        &this,
        "/account/password",
        &[("current_password", "not it at all"), ("new_password", new)],
    )
    .await;
    assert_eq!(resp.status(), 422);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("current password is not right")
    );
    assert_eq!(status_of(&other, app.at("/dashboard")).await, 200);

    let resp = post_form(
        &app,
        &this,
        "/account/password",
        &[
            ("current_password", account.password.as_str()),
            ("new_password", new),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/account?done=password_changed");
    assert_eq!(
        status_of(&this, app.at("/dashboard")).await,
        200,
        "this one stays"
    );
    assert_eq!(
        status_of(&other, app.at("/dashboard")).await,
        303,
        "the other is over"
    );

    // The old password no longer logs in; the new one does.
    let old = browser()
        .post(app.at("/login"))
        .form(&[
            ("email", account.email.as_str()),
            ("password", account.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
    let renewed = Account {
        password: new.into(),
        ..account
    };
    app.browser_login(&browser(), &renewed).await;
}

#[tokio::test]
async fn the_sessions_list_names_each_device_and_ends_another_one() {
    let app = spawn_app().await;
    let account = app.register().await;
    let (firefox, chrome) = (browser_as(FIREFOX_LINUX), browser_as(CHROME_WINDOWS));
    app.browser_login(&firefox, &account).await;
    app.browser_login(&chrome, &account).await;

    let page = page_text(&firefox, app.at("/account")).await;
    let rows = session_rows(&page);
    assert_eq!(rows.len(), 2, "{page}");
    let mine: Vec<_> = rows.iter().filter(|r| r.contains("This browser")).collect();
    assert_eq!(mine.len(), 1, "exactly one row is this browser: {page}");
    assert!(mine[0].contains("Firefox on Linux"), "{}", mine[0]);
    assert!(
        end_action(mine[0]).is_none(),
        "this browser logs out with Log out"
    );
    let theirs = rows.iter().find(|r| !r.contains("This browser")).unwrap();
    assert!(theirs.contains("Chrome on Windows"), "{theirs}");
    for row in &rows {
        assert!(row.contains("<code>127.0.0.1</code>"), "{row}");
        assert_eq!(
            row.matches("<time").count(),
            2,
            "created and last seen: {row}"
        );
    }

    // Another user cannot end it, even knowing its id.
    let action = end_action(theirs).unwrap();
    let stranger = browser();
    app.browser_login(&stranger, &app.register().await).await;
    let resp = post_form(&app, &stranger, &action, &[]).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(status_of(&chrome, app.at("/dashboard")).await, 200);

    let resp = post_form(&app, &firefox, &action, &[]).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/account?done=session_ended");
    assert_eq!(status_of(&chrome, app.at("/dashboard")).await, 303);
    assert_eq!(status_of(&firefox, app.at("/dashboard")).await, 200);
    let page = page_text(&firefox, app.at("/account")).await;
    assert_eq!(session_rows(&page).len(), 1);
}

#[tokio::test]
async fn last_seen_moves_at_most_once_a_minute() {
    let app = spawn_app().await;
    let account = app.register().await;
    let client = browser();
    app.browser_login(&client, &account).await;
    let last_seen = || -> i64 {
        let conn = app.state.store.conn().unwrap();
        conn.query_row(
            "SELECT last_seen_at FROM sessions WHERE user_id = ?1",
            [&account.user_id],
            |r| r.get(0),
        )
        .unwrap()
    };
    let first = last_seen();
    page_text(&client, app.at("/dashboard")).await;
    assert_eq!(
        last_seen(),
        first,
        "a request within the minute writes nothing"
    );
    // Two minutes ago, as far as the database knows: the next request moves it.
    let conn = app.state.store.conn().unwrap();
    conn.execute(
        "UPDATE sessions SET last_seen_at = last_seen_at - 120000 WHERE user_id = ?1",
        [&account.user_id],
    )
    .unwrap();
    page_text(&client, app.at("/dashboard")).await;
    assert!(last_seen() >= first, "{} < {first}", last_seen());
}

/// Files under the data directory whose name contains `needle`.
fn files_named(app: &TestApp, needle: &str) -> usize {
    fn walk(dir: &std::path::Path, needle: &str, found: &mut usize) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains(needle))
            {
                *found += 1;
            }
            if path.is_dir() {
                walk(&path, needle, found);
            }
        }
    }
    let mut found = 0;
    walk(&app.data_dir, needle, &mut found);
    found
}

#[tokio::test]
async fn deleting_the_account_removes_its_data_keeps_the_accounts_and_frees_the_email() {
    let app = spawn_app().await;
    let account = app.register().await;
    let other = app.register().await;
    let key = account.api_key.clone();
    let user = account.user_id.clone();

    // A run with results and a saved state, an upload of its own, one shared with another
    // account, and the library model it ran.
    let run = app
        .run(
            &key,
            &json!({ "fmu_id": "lib:BouncingBall", "stop_time": 1.0, "save_final_state": true }),
        )
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let run_id = run["id"].as_str().unwrap().to_string();
    let own = app
        .upload_fmu(&key, fresh_fmu("Dahlquist", "3.0", "mine alone"))
        .await;
    assert_eq!(own.status(), 201);
    let own_id = own.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let shared_bytes = fresh_fmu("Dahlquist", "3.0", "ours");
    let shared = app.upload_fmu(&key, shared_bytes.clone()).await;
    let shared_id = shared.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        app.upload_fmu(&other.api_key, shared_bytes)
            .await
            .status()
            .is_success()
    );
    assert_eq!(files_named(&app, &run_id), 1, "the results are stored");
    assert_eq!(app.count("fmu_states WHERE user_id = ?1", [&user]), 1);
    let state_files = || std::fs::read_dir(app.data_dir.join("states")).map_or(0, |d| d.count());
    assert_eq!(state_files(), 1, "the saved state is stored");
    let ledger_rows = app.count("credit_ledger WHERE user_id = ?1", [&user]);
    let usage_rows = app.count("usage WHERE user_id = ?1", [&user]);
    assert!(
        ledger_rows >= 2 && usage_rows == 1,
        "{ledger_rows} {usage_rows}"
    );

    let client = browser();
    app.browser_login(&client, &account).await;
    let second = browser();
    app.browser_login(&second, &account).await;

    // The password confirms it.
    let resp = post_form(
        &app,
        &client,
        "/account/delete",
        &[("password", "wrong guess")],
    )
    .await;
    assert_eq!(resp.status(), 422);
    assert_eq!(
        app.get_json("/api/v1/me", &key).await["email"],
        account.email.as_str()
    );

    let resp = post_form(
        &app,
        &client,
        "/account/delete",
        &[("password", account.password.as_str())],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/?account=deleted");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    let home = page_text(&client, app.at("/?account=deleted")).await;
    assert!(home.contains("Your account was deleted."));

    // Gone: sessions (both browsers), keys, runs and their results, states, its uploads.
    assert_eq!(status_of(&second, app.at("/dashboard")).await, 303);
    assert_eq!(app.get("/api/v1/me", &key).await.status(), 401);
    for table in ["sessions", "api_keys", "runs", "fmu_states", "fmu_owners"] {
        let n = app.count(&format!("{table} WHERE user_id = ?1"), [&user]);
        assert_eq!(n, 0, "{table}");
    }
    assert_eq!(files_named(&app, &run_id), 0, "the result file is gone");
    assert_eq!(state_files(), 0, "the state file is gone");
    assert_eq!(app.count("fmus WHERE id = ?1", [&own_id]), 0);
    assert_eq!(
        files_named(&app, &own_id),
        0,
        "its own upload's files are gone"
    );
    // What someone else also uploaded, and the library, stay.
    let theirs = app
        .get(&format!("/api/v1/fmus/{shared_id}"), &other.api_key)
        .await;
    assert_eq!(theirs.status(), 200);
    assert!(files_named(&app, &shared_id) > 0);
    assert_eq!(
        app.count("fmus WHERE library_id = 'lib:BouncingBall'", []),
        1
    );

    // Kept for accounting, anonymised: the ledger still adds up to the row's balance.
    assert_eq!(
        app.count("credit_ledger WHERE user_id = ?1", [&user]),
        ledger_rows
    );
    assert_eq!(app.count("usage WHERE user_id = ?1", [&user]), usage_rows);
    let conn = app.state.store.conn().unwrap();
    let (email, name, hash, credits, deleted): (
        String,
        Option<String>,
        Option<String>,
        i64,
        Option<i64>,
    ) = conn
        .query_row(
            "SELECT email, name, password_hash, credits, deleted_at FROM users WHERE id = ?1",
            [&user],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!((email.as_str(), name, hash), ("", None, None));
    assert!(deleted.is_some());
    let sum: i64 = conn
        .query_row(
            "SELECT SUM(delta) FROM credit_ledger WHERE user_id = ?1",
            [&user],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sum, credits);

    // Logging in fails; the email signs up again, as a new account.
    let login = browser()
        .post(app.at("/login"))
        .form(&[
            ("email", account.email.as_str()),
            ("password", account.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);
    let again = browser()
        .post(app.at("/register"))
        .form(&[
            ("email", account.email.as_str()),
            ("password", "a brand new password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 303, "the email is free again");
    let fresh = app.count(
        "users WHERE email = ?1 AND deleted_at IS NULL",
        [&account.email],
    );
    assert_eq!(fresh, 1);
}

/// `fmu-gateway admin reset-link` on the server's data directory, with its public URL.
fn reset_link(app: &TestApp, email: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fmu-gateway"))
        .args(["admin", "reset-link", "--email", email])
        .arg("--data-dir")
        .arg(&app.data_dir)
        .envs(crate::common::db::env(&app.data_dir))
        .env("FMU_GATEWAY_PUBLIC_URL", &app.url)
        .output()
        .unwrap()
}

fn printed_link(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The link is the last line (the log may come before it).
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    stdout.lines().last().unwrap_or_default().trim().to_string()
}

/// Follows a reset link and sets `password` with its form, as a browser without JavaScript.
async fn set_password(link: &str, password: &str) -> reqwest::Response {
    let client = browser();
    let form_page = client.get(link).send().await.unwrap();
    let status = form_page.status();
    let page = form_page.text().await.unwrap();
    let token = link.split("token=").nth(1).unwrap();
    if status == 200 {
        assert!(page.contains(&format!("value=\"{token}\"")), "{page}");
    }
    let action = link.split('?').next().unwrap();
    client
        .post(action)
        .form(&[("token", token), ("password", password)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_operators_reset_link_sets_a_new_password_once_and_ends_every_session() {
    let app = spawn_app().await;
    let account = app.register().await;
    let (one, two) = (browser(), browser());
    app.browser_login(&one, &account).await;
    app.browser_login(&two, &account).await;
    // The login page leads to how to get a link.
    let login = page_text(&browser(), app.at("/login")).await;
    assert!(login.contains("href=\"/forgot-password\""));
    let forgot = page_text(&browser(), app.at("/forgot-password")).await;
    assert!(
        forgot.contains("fmu-gateway admin reset-link --email"),
        "{forgot}"
    );

    // The real binary prints a link under the public URL; only the token's hash is stored.
    let link = printed_link(&reset_link(&app, &account.email.to_uppercase()));
    assert!(
        link.starts_with(&format!("{}/reset-password?token=", app.url)),
        "{link}"
    );
    let token = link.split("token=").nth(1).unwrap();
    assert_eq!(token.len(), 64);
    let hashed = {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes()).to_vec()
    };
    let stored = app.count(
        "password_resets WHERE token_hash = ?1 AND user_id = ?2",
        fmu_gateway::sql_params![hashed, account.user_id],
    );
    assert_eq!(stored, 1, "the token is stored as its SHA-256");

    // Too short a password is refused and leaves the link usable.
    let resp = set_password(&link, "short").await;
    assert_eq!(resp.status(), 422);
    let new = "reset by the operator";
    let resp = set_password(&link, new).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Your password was changed")
    );
    assert_eq!(
        status_of(&one, app.at("/dashboard")).await,
        303,
        "sessions end"
    );
    assert_eq!(status_of(&two, app.at("/dashboard")).await, 303);
    app.browser_login(
        &browser(),
        &Account {
            password: new.into(),
            ..account
        },
    )
    .await;

    // Used: refused, on the page and on the form.
    let page = browser().get(&link).send().await.unwrap();
    assert_eq!(page.status(), 422);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("used already, has expired")
    );
    assert_eq!(
        set_password(&link, "yet another password").await.status(),
        422
    );

    // Expired: a fresh link an hour old is refused too.
    let email = app.register().await.email;
    let link = printed_link(&reset_link(&app, &email));
    let conn = app.state.store.conn().unwrap();
    conn.execute(
        "UPDATE password_resets SET expires_at = expires_at - 3600001 WHERE used_at IS NULL",
        [],
    )
    .unwrap();
    assert_eq!(set_password(&link, "too late for this").await.status(), 422);

    // An email with no account: the operator is told, nothing is printed.
    let out = reset_link(&app, "nobody@example.com");
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("token="));
    assert!(String::from_utf8_lossy(&out.stderr).contains("account not found"));
}

/// A minimal SMTP server for tests: speaks plain SMTP (EHLO/HELO, MAIL, RCPT, DATA, QUIT) to
/// whoever connects and keeps each message's recipients and text.
struct SmtpSink {
    port: u16,
    mails: tokio::sync::mpsc::UnboundedReceiver<(Vec<String>, String)>,
}

impl SmtpSink {
    async fn start() -> SmtpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, mails) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(Self::session(socket, tx.clone()));
            }
        });
        SmtpSink { port, mails }
    }

    async fn session(
        socket: tokio::net::TcpStream,
        mails: tokio::sync::mpsc::UnboundedSender<(Vec<String>, String)>,
    ) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
        let mut to = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                "HELO" | "MAIL" | "RSET" | "NOOP" => b"250 OK\r\n",
                "RCPT" => {
                    to.push(line[line.find('<').unwrap() + 1..line.find('>').unwrap()].to_string());
                    b"250 OK\r\n"
                }
                "DATA" => {
                    write.write_all(b"354 go on\r\n").await.unwrap();
                    let mut text = String::new();
                    while let Ok(Some(l)) = lines.next_line().await {
                        if l == "." {
                            break;
                        }
                        text.push_str(l.strip_prefix('.').unwrap_or(&l));
                        text.push('\n');
                    }
                    mails.send((std::mem::take(&mut to), text)).unwrap();
                    b"250 queued\r\n"
                }
                "QUIT" => {
                    let _ = write.write_all(b"221 bye\r\n").await;
                    return;
                }
                _ => b"502 not here\r\n",
            };
            write.write_all(reply).await.unwrap();
        }
    }

    /// The next message, within ten seconds.
    async fn next(&mut self) -> (Vec<String>, String) {
        tokio::time::timeout(std::time::Duration::from_secs(10), self.mails.recv())
            .await
            .expect("a mail within 10 s")
            .unwrap()
    }
}

/// The server under test mailing through `sink`.
async fn spawn_mailing_app(sink: &SmtpSink) -> TestApp {
    let port = sink.port;
    spawn_app_with(move |c| {
        c.smtp = Some(fmu_gateway::config::Smtp {
            host: "127.0.0.1".into(),
            port,
            tls: fmu_gateway::config::SmtpTls::None,
            user: None,
            password: None,
            from: "FMU Gateway <noreply@example.com>".into(),
        });
    })
    .await
}

async fn ask_for_reset(app: &TestApp, email: &str) -> String {
    let resp = browser()
        .post(app.at("/forgot-password"))
        .form(&[("email", email)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn forgot_password_mails_a_link_that_sets_a_new_password_and_ends_the_sessions() {
    let mut sink = SmtpSink::start().await;
    let app = spawn_mailing_app(&sink).await;
    let account = app.register().await;
    let old_session = browser();
    app.browser_login(&old_session, &account).await;
    let form = page_text(&browser(), app.at("/forgot-password")).await;
    assert!(
        form.contains("name=\"email\""),
        "with mail, the page asks for the email"
    );

    // An unknown address gets the same answer, and no mail.
    let unknown = ask_for_reset(&app, "nobody-here@example.com").await;
    let known = ask_for_reset(&app, &account.email).await;
    assert_eq!(unknown, known);
    assert!(known.contains("If an account exists for that email, we sent it a link"));
    let (to, text) = sink.next().await;
    assert_eq!(
        to,
        vec![account.email.as_str()],
        "the first mail is the account's"
    );
    assert!(
        text.contains("Subject: Reset your FMU Gateway password"),
        "{text}"
    );

    // The link in the mail (quoted-printable may fold it: join soft line breaks).
    let text = text.replace("=\n", "").replace("=3D", "=");
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/reset-password?token="))
        .expect("the mail holds the link")
        .to_string();
    let path = &link[link.find("/reset-password").unwrap()..];
    let link = app.at(path);
    let new = "mailed me a new one";
    let resp = set_password(&link, new).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        status_of(&old_session, app.at("/dashboard")).await,
        303,
        "old sessions end"
    );
    app.browser_login(
        &browser(),
        &Account {
            password: new.into(),
            ..account
        },
    )
    .await;
    assert_eq!(
        set_password(&link, "and once more please").await.status(),
        422,
        "used"
    );
}

/// Posts the sign-up form as a browser without JavaScript does.
async fn sign_up(app: &TestApp, email: &str, password: &str) -> (u16, String) {
    let resp = browser()
        .post(app.at("/register"))
        .form(&[("email", email), ("name", "Grace"), ("password", password)])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The link a mail holds, as a path on the server (quoted-printable may fold it).
fn mailed_path(text: &str, route: &str) -> String {
    let text = text.replace("=\n", "").replace("=3D", "=");
    let link = text
        .split_whitespace()
        .find(|w| w.contains(route))
        .unwrap_or_else(|| panic!("the mail holds a {route} link: {text}"))
        .to_string();
    link[link.find(route).unwrap()..].to_string()
}

#[tokio::test]
async fn with_mail_the_sign_up_page_answers_alike_for_a_taken_address_and_mails_the_difference() {
    let mut sink = SmtpSink::start().await;
    let app = spawn_mailing_app(&sink).await;
    let taken = app.register().await;
    let fresh = crate::common::unique_email();

    // The same status and page, whether the address has an account or not.
    let (fresh_status, fresh_page) = sign_up(&app, &fresh, "a new password").await;
    let (taken_status, taken_page) = sign_up(&app, &taken.email, "a new password").await;
    assert_eq!(fresh_status, 200, "{fresh_page}");
    assert_eq!((taken_status, &taken_page), (fresh_status, &fresh_page));
    assert!(fresh_page.contains("Check your inbox"), "{fresh_page}");
    // What is wrong with the form itself is still said on the page.
    let (status, page) = sign_up(&app, &crate::common::unique_email(), "short").await;
    assert_eq!(status, 422, "{page}");

    // The difference goes by mail, to each address's owner.
    let mut mails = vec![sink.next().await, sink.next().await];
    mails.sort_by_key(|(to, _)| to[0] != fresh);
    let [(to_fresh, link_mail), (to_taken, note)] = <[_; 2]>::try_from(mails).unwrap();
    assert_eq!(to_fresh, vec![fresh.as_str()]);
    assert_eq!(to_taken, vec![taken.email.as_str()]);
    assert!(
        note.contains("already has one") && note.contains("/forgot-password"),
        "{note}"
    );
    assert!(
        !note.contains("/register/confirm"),
        "no link for a taken address: {note}"
    );

    // No account until the link is used: the fresh address cannot log in yet.
    let login = browser()
        .post(app.at("/login"))
        .form(&[("email", fresh.as_str()), ("password", "a new password")])
        .send()
        .await
        .unwrap();
    assert_ne!(login.status(), 303, "no account before the link");

    // The link shows a button; the button makes the account and logs in, once.
    let path = mailed_path(&link_mail, "/register/confirm");
    let client = browser();
    let page = page_text(&client, app.at(&path)).await;
    assert!(page.contains("Create my account"), "{page}");
    let token = path.split("token=").nth(1).unwrap().to_string();
    let resp = client
        .post(app.at("/register/confirm"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/dashboard");
    let dashboard = page_text(&client, app.at("/dashboard")).await;
    assert!(dashboard.contains("Hello, Grace"), "{dashboard}");
    let again = browser()
        .post(app.at("/register/confirm"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 422, "a link works once");
    // The taken address's account is as it was: its password still works.
    app.browser_login(&browser(), &taken).await;
}

/// A run request authenticated just before its account's deletion committed must not start a
/// run on the tombstone: the reservation checks the account in its own transaction.
#[tokio::test]
async fn a_run_that_reaches_a_deleted_account_is_refused_and_reserves_nothing() {
    let app = spawn_app().await;
    let account = app.register().await;
    let me = app.get_json("/api/v1/me", &account.api_key).await;
    let balance = me["credits"].as_i64().unwrap();
    // The deletion commits between the key check and the reservation: marked as deleted
    // while the key row (checked first) is still there.
    let db = crate::common::db::open(&app.data_dir).await.conn().unwrap();
    db.execute(
        "UPDATE users SET deleted_at = 1 WHERE email = ?1",
        [&account.email],
    )
    .unwrap();
    let resp = app
        .create_run(
            &account.api_key,
            &serde_json::json!({"fmu_id": "lib:Dahlquist", "stop_time": 1}),
        )
        .await;
    assert_eq!(resp.status(), 401, "{}", resp.text().await.unwrap());
    let (runs, credits): (i64, i64) = db
        .query_row(
            "SELECT (SELECT COUNT(*) FROM runs r JOIN users u ON u.id = r.user_id WHERE u.email = ?1),
                    (SELECT credits FROM users WHERE email = ?1)",
            [&account.email],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((runs, credits), (0, balance), "no run, nothing reserved");
}
