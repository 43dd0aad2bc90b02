//! Refunds take back unspent credits and flag credits already spent.

use super::*;

#[tokio::test]
async fn refunds_take_back_unspent_credits_and_flag_credits_already_spent() {
    let stub = stripe::start().await;
    // A run costs 100 credits here, so a purchase can be mostly spent in one run.
    let app = spawn_billing_app(&stub, |c| c.run_cost = 100.into()).await;
    let account = app.register().await;
    buy_pro(&app, &account, "evt_buy", "pi_refund").await;
    assert_eq!(credits(&app, &account.api_key).await, 145);

    // Half refunded while all is unspent: 60 credits go.
    let half = stripe::charge_refunded("evt_r1", "ch_1", "pi_refund", 4900, 2450);
    assert_eq!(deliver(&app, &half).await.status(), 200);
    let o = overview(&app, &account.api_key).await;
    assert_eq!(o["credits"], 85);
    assert_eq!(o["history"][0]["kind"], "purchase_refund");
    assert_eq!(o["history"][0]["delta"], -60);
    assert_eq!(o["plan"]["id"], "pro");
    assert!(o["account_flag"].is_null());

    // 85 credits do not pay for a 100-credit run; a second purchase does.
    let resp = app
        .create_run(
            &account.api_key,
            &json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.1 }),
        )
        .await;
    assert_eq!(
        resp.status(),
        402,
        "85 credits do not pay for a 100-credit run"
    );
    buy_pro(&app, &account, "evt_buy2", "pi_second").await;
    let resp = app
        .create_run(
            &account.api_key,
            &json!({ "fmu_id": "lib:Dahlquist", "stop_time": 0.1 }),
        )
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(credits(&app, &account.api_key).await, 105);

    // The second purchase refunded in full: its 120 credits are owed, 105 are left.
    let full = stripe::charge_refunded("evt_r2", "ch_2", "pi_second", 4900, 4900);
    assert_eq!(deliver(&app, &full).await.status(), 200);
    // Redelivery changes nothing.
    assert_eq!(deliver(&app, &full).await.status(), 200);
    let o = overview(&app, &account.api_key).await;
    assert_eq!(o["credits"], 0, "never below zero");
    let flag = o["account_flag"].as_str().unwrap();
    assert!(flag.contains("15 had already been spent"), "{flag}");
    assert_eq!(o["purchases"][0]["refunded_cents"], 4900);
    assert_eq!(o["purchases"][0]["credits_removed"], 105);
    // The first purchase is still half in force, so the plan is still Pro.
    assert_eq!(o["plan"]["id"], "pro");

    // The rest of the first purchase refunded: nothing left to take, the flag grows.
    let rest = stripe::charge_refunded("evt_r3", "ch_1", "pi_refund", 4900, 4900);
    assert_eq!(deliver(&app, &rest).await.status(), 200);
    let o = overview(&app, &account.api_key).await;
    assert_eq!(o["credits"], 0);
    assert_eq!(o["plan"]["id"], "free");
    // Stripe does not promise order: an older partial-refund event arriving late (under a
    // new id) neither returns credits nor lowers the refunded total.
    let late = stripe::charge_refunded("evt_r1_late", "ch_1", "pi_refund", 4900, 2450);
    assert_eq!(deliver(&app, &late).await.status(), 200);
    let o = overview(&app, &account.api_key).await;
    assert_eq!(o["credits"], 0);
    assert_eq!(o["purchases"][1]["refunded_cents"], 4900);
    assert_eq!(o["purchases"][1]["credits_removed"], 60);

    // An operator sees the flag and the purchases, and clears the flag once dealt with.
    let admin = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fmu-gateway"))
            .arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(&app.data_dir)
            .envs(crate::common::db::env(&app.data_dir))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let shown = admin(&["account", "--email", &account.email]);
    assert!(shown.contains("plan: Free · credits: 0"), "{shown}");
    assert!(shown.contains("flag: refund of purchase"), "{shown}");
    assert!(
        shown.contains("refunded $49 (taken back 105, already spent 15)"),
        "{shown}"
    );
    let cleared = admin(&["clear-flag", "--email", &account.email]);
    assert!(cleared.contains("cleared the flag"), "{cleared}");
    assert!(overview(&app, &account.api_key).await["account_flag"].is_null());

    // The ledger adds up to the balance.
    let conn = app.state.store.conn().unwrap();
    let sum: i64 = conn
        .query_row(
            "SELECT SUM(delta) FROM credit_ledger WHERE user_id = ?1",
            [&account.user_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sum, 0);
}
