//! What the store's own tests start from.

use super::Store;
use super::runs::RunRow;
use crate::domain::ids::{Credits, FmuId, KeyId, RunId, UserId};
use crate::domain::runs::RunStatus;

/// A store in a temporary directory (removed with the returned guard) with one user, `u`,
/// holding `credits`.
pub async fn store_with_user(credits: i64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.db"), 2).unwrap();
    store
        .run(move |conn| {
            conn.execute(
                "INSERT INTO users (id, email, email_normalized, credits, created_at)
                 VALUES ('u', 'u@example.com', 'u@example.com', ?1, 0)",
                [credits],
            )
        })
        .await
        .unwrap();
    (dir, store)
}

/// A queued run of `u` costing one credit, started with `key` (`None`: from the dashboard)
/// at `created_at`.
pub fn queued_run(id: &str, key: Option<&str>, created_at: i64) -> RunRow {
    RunRow {
        id: RunId::from(id),
        user_id: UserId::from("u"),
        api_key_id: key.map(KeyId::from),
        fmu_id: FmuId::from("f"),
        fmu_name: "F".into(),
        status: RunStatus::Queued,
        settings: "{}".into(),
        credits_reserved: Credits::from(1u32),
        credits_charged: Credits::ZERO,
        error: None,
        log: None,
        created_at,
        started_at: None,
        finished_at: None,
        failure_kind: None,
        charged: false,
        result_removed_at: None,
        reference_check: None,
        progress_time: None,
        lease_node: None,
    }
}
