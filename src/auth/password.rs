//! Password hashing with argon2id (the crate's defaults follow OWASP's recommendation).
//!
//! Hashing is deliberately slow, so it runs on the blocking pool, never on a request thread.
//! Each hash also takes 19 MiB, so at most [`Hashers`] of them run at once: fifty concurrent
//! logins wait their turn instead of taking ~1 GB.

use std::sync::{Arc, OnceLock};

use tokio::sync::Semaphore;

/// How many password hashes may run at once (`FMU_GATEWAY_HASH_CONCURRENCY`).
#[derive(Clone)]
pub struct Hashers(Arc<Semaphore>);

impl Hashers {
    pub fn new(concurrent: usize) -> Self {
        Hashers(Arc::new(Semaphore::new(concurrent.max(1))))
    }

    /// Runs `work` on the blocking pool once a slot is free. The slot is held until the work
    /// ends, even if the request that asked for it is gone.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = self
            .0
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HashError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(HashError::Task)
    }
}

/// Why a password could not be hashed (never the user's fault: the message is for the log).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2: {0}")]
    Argon2(argon2::password_hash::Error),
    #[error("the password hashers are shut down")]
    Closed,
    #[error("a password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Hashes a password to a PHC string (`$argon2id$v=19$…`), with a fresh random salt.
pub async fn hash(hashers: &Hashers, password: String) -> Result<String, HashError> {
    hashers
        .run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(HashError::Argon2)
        })
        .await?
}

/// Whether `password` matches `stored`. With no stored hash (unknown email, or an account
/// without a password) it still verifies against a dummy hash, so the answer takes as long
/// as a wrong password and response times do not reveal which emails are registered.
pub async fn verify(hashers: &Hashers, password: String, stored: Option<String>) -> bool {
    hashers
        .run(move || {
            let (hash, real) = match stored {
                Some(h) => (h, true),
                None => (dummy_hash().to_string(), false),
            };
            let ok = Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok();
            ok && real
        })
        .await
        .unwrap_or(false)
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"not a real password; only here to spend the same time")
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hashers = Hashers::new(2);
        let h = hash(&hashers, "correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&hashers, "correct horse".into(), Some(h.clone())).await);
        assert!(!verify(&hashers, "wrong horse".into(), Some(h)).await);
        assert!(!verify(&hashers, "anything".into(), None).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_than_the_allowed_hashes_run_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hashers = Hashers::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (h, running, peak) = (hashers.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                h.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(30));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
                .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }
}
