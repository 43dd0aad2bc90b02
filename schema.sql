-- FMU Gateway: the whole SQLite schema, in the order it was introduced.
--
-- Each section starting with `-- migration N:` is applied once, in order, to a database whose
-- `PRAGMA user_version` is below N; user_version is then set to N in the same transaction.
-- Never edit a section that has shipped: add a new one at the end.
-- Times are INTEGER milliseconds since the Unix epoch (UTC). Ids are short random text.

-- migration 1: accounts, browser sessions, API keys, the credit ledger, usage
CREATE TABLE users (
    id               TEXT PRIMARY KEY,               -- 'usr_…'
    email            TEXT NOT NULL,                  -- as the user typed it
    email_normalized TEXT NOT NULL UNIQUE,           -- lower-cased: unique regardless of case
    name             TEXT,
    password_hash    TEXT,                           -- argon2id PHC string; NULL when the
                                                     -- account was created over the API
                                                     -- with only an email
    credits          INTEGER NOT NULL DEFAULT 0 CHECK (credits >= 0),
    created_at       INTEGER NOT NULL
);

-- Server-side browser sessions. The cookie holds a random token; only its SHA-256 is stored,
-- so a copy of the database cannot be used to take over a session.
CREATE TABLE sessions (
    token_hash  BLOB PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions(user_id);

-- API keys are biscuit tokens; the token itself is never stored, only what identifies it.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,                  -- 'key_…', named in the token
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label         TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,                           -- also a check inside the token
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX api_keys_by_user ON api_keys(user_id, created_at);

-- Every change of a balance, append-only: users.credits always equals the balance_after of
-- the user's newest row.
CREATE TABLE credit_ledger (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        TEXT NOT NULL REFERENCES users(id),
    delta          INTEGER NOT NULL,
    balance_after  INTEGER NOT NULL CHECK (balance_after >= 0),
    kind           TEXT NOT NULL CHECK (kind IN
                     ('grant', 'reserve', 'settle', 'refund', 'purchase', 'purchase_refund')),
    reason         TEXT NOT NULL,
    run_id         TEXT,
    created_at     INTEGER NOT NULL
);
CREATE INDEX credit_ledger_by_user ON credit_ledger(user_id, id);
CREATE TRIGGER credit_ledger_no_update BEFORE UPDATE ON credit_ledger
BEGIN SELECT RAISE(ABORT, 'credit_ledger is append-only'); END;
CREATE TRIGGER credit_ledger_no_delete BEFORE DELETE ON credit_ledger
BEGIN SELECT RAISE(ABORT, 'credit_ledger is append-only'); END;

-- One row per billable event (a settled run).
CREATE TABLE usage (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    fmu_name    TEXT NOT NULL,
    credits     INTEGER NOT NULL CHECK (credits >= 0),
    api_key_id  TEXT,                                -- NULL: started from the dashboard
    run_id      TEXT
);
CREATE INDEX usage_by_user_time ON usage(user_id, created_at);
CREATE INDEX usage_by_key ON usage(api_key_id);

-- migration 2: the FMU registry
-- An FMU is identified by the SHA-256 of its file: the same bytes are stored once, however
-- many users upload them. Library models are visible to everyone; uploads only to the users
-- who uploaded them (fmu_owners).
CREATE TABLE fmus (
    id           TEXT PRIMARY KEY,                 -- SHA-256 of the .fmu file, lower-case hex
    library_id   TEXT UNIQUE,                      -- 'lib:<Model>' / 'lib:<Model>@fmi2'; NULL for uploads
    model_name   TEXT NOT NULL,
    fmi_version  TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL,
    info         TEXT NOT NULL,                    -- the model description as JSON (fmi::describe)
    created_at   INTEGER NOT NULL
);
CREATE TABLE fmu_owners (
    fmu_id       TEXT NOT NULL REFERENCES fmus(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    file_name    TEXT NOT NULL,
    uploaded_at  INTEGER NOT NULL,
    PRIMARY KEY (fmu_id, user_id)
);
CREATE INDEX fmu_owners_by_user ON fmu_owners(user_id, uploaded_at);

-- migration 3: simulation runs and idempotency keys
CREATE TABLE runs (
    id                TEXT PRIMARY KEY,                -- 'run_…'
    user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    api_key_id        TEXT,                            -- NULL: started from the dashboard
    fmu_id            TEXT NOT NULL,                   -- SHA-256 of the FMU
    fmu_name          TEXT NOT NULL,                   -- what the user called it (lib:…, model name)
    status            TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    settings          TEXT NOT NULL,                   -- the resolved settings, JSON
    credits_reserved  INTEGER NOT NULL CHECK (credits_reserved >= 0),
    credits_charged   INTEGER NOT NULL DEFAULT 0 CHECK (credits_charged >= 0),
    error             TEXT,
    log               TEXT,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER
);
CREATE INDEX runs_by_user ON runs(user_id, created_at);
CREATE INDEX runs_unfinished ON runs(status) WHERE status IN ('queued', 'running');

-- A retried request with the same Idempotency-Key returns the run the first one made.
CREATE TABLE idempotency_keys (
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    run_id        TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- migration 4: billing (Stripe customers, purchases, processed webhook events)
-- The Stripe customer of an account, created on its first purchase.
CREATE TABLE billing_customers (
    user_id             TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    stripe_customer_id  TEXT NOT NULL UNIQUE,
    created_at          INTEGER NOT NULL
);

-- One row per paid Checkout Session: the credits it granted and what refunds took back.
CREATE TABLE purchases (
    id                   TEXT PRIMARY KEY,             -- 'pur_…'
    user_id              TEXT NOT NULL REFERENCES users(id),
    plan                 TEXT NOT NULL,
    credits              INTEGER NOT NULL CHECK (credits > 0),
    amount_cents         INTEGER NOT NULL CHECK (amount_cents >= 0),
    currency             TEXT NOT NULL,
    checkout_session_id  TEXT NOT NULL UNIQUE,          -- a session grants credits once
    payment_intent_id    TEXT UNIQUE,                   -- how refunds find their purchase
    refunded_cents       INTEGER NOT NULL DEFAULT 0,
    credits_removed      INTEGER NOT NULL DEFAULT 0,    -- taken back by refunds
    credits_unrecovered  INTEGER NOT NULL DEFAULT 0,    -- refunded after being spent
    created_at           INTEGER NOT NULL,
    CHECK (credits_removed + credits_unrecovered <= credits)
);
CREATE INDEX purchases_by_user ON purchases(user_id, created_at);

-- Every Stripe event id handled, written in the same transaction as its effect, so a
-- redelivered event changes nothing.
CREATE TABLE stripe_events (
    id           TEXT PRIMARY KEY,                      -- 'evt_…'
    type         TEXT NOT NULL,
    outcome      TEXT NOT NULL,                         -- what we did, for operators
    received_at  INTEGER NOT NULL
);

-- Set when a refund took back credits that had already been spent: an operator should look.
ALTER TABLE users ADD COLUMN billing_flag TEXT;

-- migration 5: who paid for a finished run, and why a failed run failed
-- `charged` is the answer of the one charging rule (src/runs/charging.rs), kept with the run
-- so that it can be shown on every finished run; `failure_kind` is one of model_error,
-- model_crashed, out_of_memory, time_limit, service_error, interrupted (failed runs only).
ALTER TABLE runs ADD COLUMN failure_kind TEXT CHECK (failure_kind IN
    ('model_error', 'model_crashed', 'out_of_memory', 'time_limit', 'service_error', 'interrupted'));
ALTER TABLE runs ADD COLUMN charged INTEGER NOT NULL DEFAULT 0 CHECK (charged IN (0, 1));
UPDATE runs SET charged = 1 WHERE credits_charged > 0 OR status = 'succeeded';

-- migration 6: browser sessions opened with an API key; free-credit grants per address
-- A session started by logging in with a key names it, and lives only while the key does
-- (revoked or expired key: the session is over). NULL for email + password logins.
ALTER TABLE sessions ADD COLUMN api_key_id TEXT REFERENCES api_keys(id) ON DELETE CASCADE;
CREATE INDEX sessions_by_key ON sessions(api_key_id) WHERE api_key_id IS NOT NULL;

-- How many new accounts got the free credits from one client address (an IPv4 address or
-- an IPv6 /64) on one UTC day, for FMU_GATEWAY_FREE_GRANTS_PER_ADDRESS_PER_DAY.
CREATE TABLE free_grants (
    address  TEXT NOT NULL,
    day      INTEGER NOT NULL,                          -- days since 1970-01-01 (UTC)
    grants   INTEGER NOT NULL,
    PRIMARY KEY (address, day)
);

-- migration 7: disk bounds (per-account upload quota, result retention)
-- What an FMU takes on disk: the .fmu file and its extracted files (counted against the
-- quota of each account that uploaded it). Older rows count their .fmu size only.
ALTER TABLE fmus ADD COLUMN stored_bytes INTEGER;
UPDATE fmus SET stored_bytes = size_bytes;
-- When the retention clean-up removed a succeeded run's results.
ALTER TABLE runs ADD COLUMN result_removed_at INTEGER;
CREATE INDEX runs_results_kept ON runs(finished_at)
    WHERE status = 'succeeded' AND result_removed_at IS NULL;

-- migration 8: saved FMU states
-- A serialised FMU state (fmusim's --final-fmu-state-file) a user saved from a run or
-- uploaded. Its bytes are kept content-addressed under states/<sha256> in the data
-- directory; the row says whose it is and which FMU it belongs to (its SHA-256, its
-- instantiation token or guid, FMI version and interface), so it is only ever restored into
-- that FMU. Its size counts against the owner's storage quota, with their uploads.
CREATE TABLE fmu_states (
    id                  TEXT NOT NULL,                 -- 'st_' + SHA-256 of the FMU id and the bytes
    user_id             TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sha256              TEXT NOT NULL,                 -- SHA-256 of the bytes: the file's name
    fmu_id              TEXT NOT NULL,
    instantiation_token TEXT NOT NULL,
    fmi_version         TEXT NOT NULL,                 -- '2' or '3'
    interface           TEXT NOT NULL CHECK (interface IN ('cs', 'me')),
    time                REAL NOT NULL,                 -- the simulation time it holds
    size_bytes          INTEGER NOT NULL,
    source_run          TEXT,                          -- the run that saved it first; NULL if uploaded
    created_at          INTEGER NOT NULL,
    PRIMARY KEY (user_id, id)
);
CREATE INDEX fmu_states_by_sha ON fmu_states(sha256);
-- The state each run saved (a state saved twice with the same bytes is one state).
CREATE TABLE run_states (
    run_id    TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    state_id  TEXT NOT NULL
);

-- migration 9: reference checks
-- The verdict of a run's comparison with a reference result (JSON: passed, and per variable
-- the largest deviation and the points outside the band), set when a run that asked for one
-- succeeds. A failed check does not fail the run: it is a verdict on the results.
ALTER TABLE runs ADD COLUMN reference_check TEXT;

-- migration 10: account settings (where each browser session comes from; deleted accounts;
-- password reset links)
-- Shown on the account page so a user can tell their sessions apart and end the ones they do
-- not recognise. `device` is a short "Browser on OS" read from the User-Agent at log-in;
-- `ip` the client address as the rate limits see it (Fly-Client-IP behind the proxy);
-- `last_seen_at` moves at most once a minute, so an active session is not a write per request.
ALTER TABLE sessions ADD COLUMN device TEXT;
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER;
-- A deleted account keeps its row as a tombstone: the credit ledger, usage and purchases
-- still name it (their sums stay whole), but its email, name and password are cleared and
-- `email_normalized` becomes 'deleted:<id>', so the address is free for a new sign-up.
ALTER TABLE users ADD COLUMN deleted_at INTEGER;
-- Password reset links: the token is random and only its SHA-256 is stored; a link works
-- once (`used_at`) and until `expires_at` (an hour after it was made).
CREATE TABLE password_resets (
    token_hash  BLOB PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX password_resets_by_user ON password_resets(user_id);

-- migration 11: the primary API key
-- The key a user marked as primary most recently (the dashboard shows it); with none marked,
-- the oldest active key is primary.
ALTER TABLE api_keys ADD COLUMN primary_since INTEGER;

-- migration 12: sign-ups confirmed by mail
-- With mail configured, a sign-up on the page becomes an account only when its link is opened
-- (so the page answers the same whether or not the address has an account). The password is
-- kept only as its argon2 hash, the link only as the SHA-256 of its token; one use, an hour.
CREATE TABLE pending_signups (
    token_hash     BLOB PRIMARY KEY,
    email          TEXT NOT NULL,
    name           TEXT,
    password_hash  TEXT NOT NULL,
    address        TEXT,                              -- the client's address (free-credit cap)
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER
);

-- migration 13: sweeps
-- A sweep runs many cases of one model. Starting it holds the whole cost in one ledger row;
-- each case then settles by the runs' charging rule (charged, or refunded), in batches. The
-- cases stay queued in the database until a worker takes them, so a stop of the server
-- leaves them to be resumed.
CREATE TABLE sweeps (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users(id),
    api_key_id        TEXT,
    fmu_id            TEXT NOT NULL,
    name              TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN
                        ('queued', 'running', 'completed', 'failed', 'cancelled')),
    request           TEXT NOT NULL,                   -- base settings, design, KPIs (JSON)
    parameters        TEXT NOT NULL,                   -- the varied names, in order (JSON)
    case_count        INTEGER NOT NULL CHECK (case_count > 0),
    credits_per_case  INTEGER NOT NULL CHECK (credits_per_case >= 0),
    credits_reserved  INTEGER NOT NULL CHECK (credits_reserved >= 0),
    error             TEXT,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER
);
CREATE INDEX sweeps_by_user ON sweeps(user_id, created_at);
CREATE INDEX sweeps_unfinished ON sweeps(status) WHERE status IN ('queued', 'running');
CREATE TABLE sweep_cases (
    sweep_id      TEXT NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    start_values  TEXT NOT NULL,                       -- [[name, literal], …] (JSON)
    status        TEXT NOT NULL CHECK (status IN
                    ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    kpis          TEXT,                                -- [number or null, …] (JSON)
    error         TEXT,
    failure_kind  TEXT,
    charged       INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,          -- workers it was given to
    elapsed_ms    REAL,
    finished_at   INTEGER,
    PRIMARY KEY (sweep_id, idx)
) WITHOUT ROWID;
CREATE INDEX sweep_cases_by_status ON sweep_cases(sweep_id, status, idx);
CREATE TABLE sweep_idempotency_keys (
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    sweep_id      TEXT NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);
ALTER TABLE credit_ledger ADD COLUMN sweep_id TEXT;
-- migration 14: signed webhooks
-- Endpoints a user registers to hear about their runs and sweeps (Standard Webhooks). The
-- secret must be kept to sign (it is never shown again after create or rotate); after a
-- rotation the previous one still signs, beside the new one, until `previous_expires_at`.
-- `events` is the comma-separated wire names the endpoint subscribes to (never empty).
CREATE TABLE webhook_endpoints (
    id                   TEXT PRIMARY KEY,                 -- whk_…
    user_id              TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    url                  TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    events               TEXT NOT NULL CHECK (events <> ''),
    enabled              INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    secret               TEXT NOT NULL,
    previous_secret      TEXT,
    previous_expires_at  INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_by_user ON webhook_endpoints(user_id);
-- One message (one event) for one endpoint: the body exactly as signed, and where its delivery
-- stands. `message_id` is the `webhook-id` of every attempt. A pending delivery is due at
-- `next_attempt_at`; the deliverer claims it until `claimed_until` (a lease: an attempt cut
-- short by a crash is made again once it lapses, or at the next start). `cycle_attempts`
-- counts the attempts since it was (re)sent, which sets the back-off.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,                     -- whd_…
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    message_id       TEXT NOT NULL,                        -- msg_…
    event            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    cycle_attempts   INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER,
    claimed_until    INTEGER,
    created_at       INTEGER NOT NULL,
    UNIQUE (endpoint_id, message_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries(endpoint_id, created_at);
-- Every attempt: the HTTP status, or the error when there was none (refused target, timeout,
-- connection failure); the latency; the first KiB of the answer (cut on a character boundary).
CREATE TABLE webhook_attempts (
    id                  INTEGER PRIMARY KEY,
    delivery_id         TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempted_at        INTEGER NOT NULL,
    http_status         INTEGER,
    error               TEXT,
    latency_ms          INTEGER NOT NULL,
    response_excerpt    TEXT,
    response_truncated  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts(delivery_id, id);

-- migration 15: runs as a queue that worker processes lease
-- A run is queued with its worker job (`run_jobs`, removed when the run settles). A worker
-- leases it: `lease_token` names the lease, `leased_until` is renewed by heartbeats, and only
-- the holder of the current token may settle it, so a worker whose lease ran out can never
-- settle twice. `deliveries` counts leases: a run whose worker vanished is leased again until
-- the limit, then fails, refunded. `cancel_requested` is how a cancel reaches the worker (on
-- its next heartbeat); `progress_time` is the simulated time the last heartbeat reported.
ALTER TABLE runs ADD COLUMN lease_token TEXT;
ALTER TABLE runs ADD COLUMN leased_until INTEGER;
ALTER TABLE runs ADD COLUMN lease_node TEXT;
ALTER TABLE runs ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1));
ALTER TABLE runs ADD COLUMN progress_time REAL;
CREATE INDEX runs_queued ON runs(created_at) WHERE status = 'queued';
CREATE TABLE run_jobs (
    run_id  TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    job     TEXT NOT NULL                              -- domain::runs::queue::QueuedJob (JSON)
);
-- The processes that run simulations (servers with workers, and `worker-node`s), as their
-- heartbeats last saw them: what /metrics counts.
CREATE TABLE worker_nodes (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('server', 'worker')),
    host        TEXT NOT NULL,
    slots       INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL
);
-- The process driving a sweep, and until when its lease holds: another process resumes a
-- sweep whose driver stopped renewing.
ALTER TABLE sweeps ADD COLUMN runner TEXT;
ALTER TABLE sweeps ADD COLUMN runner_until INTEGER;
-- The process whose deliverer claimed a webhook delivery: another server takes the claim over
-- once that process stops beating, rather than waiting out the claim.
ALTER TABLE webhook_deliveries ADD COLUMN claimed_by TEXT;
-- A batch of a sweep's cases a worker node leased (the sweep's driver runs the others, under
-- the sweep's own lease): its node and until when its heartbeats hold it. The driver gives
-- back the cases of a lease that ran out.
ALTER TABLE sweep_cases ADD COLUMN lease_node TEXT;
ALTER TABLE sweep_cases ADD COLUMN leased_until INTEGER;
-- Events counted against a limit every server shares (sign-ups per hour): one row each,
-- removed once it has left its window (`store::allowances`).
CREATE TABLE rate_events (
    bucket  TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX rate_events_by_bucket ON rate_events(bucket, at);
