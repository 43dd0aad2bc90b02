//! Limits every server sharing the database holds together (`rate_events`): each event
//! counted against a limit is one row, removed once it has left its window. What must be one
//! limit for the deployment (sign-ups per hour) is counted here; limits a process may hold
//! alone stay in memory (`auth::rate_limit`).

use super::sql::params;
use super::{Store, StoreResult, write_tx};

impl Store {
    /// Counts one event against `bucket`'s `limit` per `window_ms`, at `now` (ms since the
    /// epoch): `None` when it was within the limit (and is counted), `Some(wait_ms)` when not
    /// (nothing counted): how long until the oldest counted event leaves the window.
    pub async fn take_allowance(
        &self,
        bucket: &str,
        limit: u32,
        window_ms: i64,
        now: i64,
    ) -> StoreResult<Option<i64>> {
        let bucket = bucket.to_string();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let since = now - window_ms;
            tx.execute(
                "DELETE FROM rate_events WHERE bucket = ?1 AND at <= ?2",
                params![bucket, since],
            )?;
            let (counted, oldest): (u32, Option<i64>) = tx.query_row(
                "SELECT COUNT(*), MIN(at) FROM rate_events WHERE bucket = ?1",
                [&bucket],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if counted >= limit {
                let wait = oldest.map_or(window_ms, |at| at + window_ms - now).max(1);
                return Ok(Some(wait));
            }
            tx.execute(
                "INSERT INTO rate_events (bucket, at) VALUES (?1, ?2)",
                params![bucket, now],
            )?;
            tx.commit()?;
            Ok(None)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_allowance_counts_events_in_its_window_and_says_when_the_next_may_come() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), 2).unwrap();
        let hour = 3_600_000;
        assert_eq!(
            store
                .take_allowance("signup", 2, hour, 1_000)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .take_allowance("signup", 2, hour, 2_000)
                .await
                .unwrap(),
            None
        );
        // Full: the first leaves the window an hour after it came.
        assert_eq!(
            store
                .take_allowance("signup", 2, hour, 5_000)
                .await
                .unwrap(),
            Some(hour - 4_000)
        );
        // A refusal counts nothing; another bucket has its own allowance.
        assert_eq!(
            store.take_allowance("other", 1, hour, 5_000).await.unwrap(),
            None
        );
        // The first has left: one more fits, then none again.
        let later = 1_000 + hour;
        assert_eq!(
            store
                .take_allowance("signup", 2, hour, later)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .take_allowance("signup", 2, hour, later + 1)
                .await
                .unwrap(),
            Some(2_000 + hour - later - 1)
        );
        let rows: i64 = store
            .run(|c| c.query_row("SELECT COUNT(*) FROM rate_events", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(rows, 3, "what left its window is removed");
    }
}
