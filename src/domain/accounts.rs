//! Accounts: registration and the two ways to log in. Both faces (HTML forms and the JSON
//! compatibility routes) call these functions, so their rules cannot drift apart.

use crate::auth::tokens::RequestFacts;
use crate::auth::{self, Principal, password};
use crate::domain::error::{AppError, AppResult};
use crate::domain::ids::{Credits, UserId};
use crate::domain::keys::{self, NewKey};
use crate::domain::{Email, NewPassword, parse_name};
use crate::state::State;
use crate::store::Store;
use crate::store::users::{CreatedAccount, NewAccount, User};

/// What a registration asks for. The password is optional because the JSON route lets an
/// integrator sign up with an email alone and work with the API key it gets back.
pub struct Registration<'a> {
    pub email: &'a str,
    pub password: Option<&'a str>,
    pub name: Option<&'a str>,
    /// Label of an API key to create with the account, if any.
    pub first_key: Option<&'a str>,
    /// The client's address, for the cap on free-credit grants per address and day. `None`
    /// (operators' tools): no cap.
    pub from: Option<std::net::IpAddr>,
}

pub struct Registered {
    pub user: User,
    pub key: Option<NewKey>,
    /// The free credits were not granted: this address had its share for today.
    pub free_credits_withheld: bool,
}

/// What to tell a user whose account started without the free credits.
pub fn withheld_notice(state: &State) -> String {
    format!(
        "Your account was created without the {} free credits: they go to at most {} new \
         account(s) per network per day. You can buy credits on the Billing page.",
        state.config.free_credits, state.config.free_grants_per_address_per_day
    )
}

/// Creates the account, grants the free credits (a ledger row) and optionally a first key,
/// all in one transaction: either the whole account exists or none of it.
///
/// Two bounds stop free-credit farming: a service-wide number of sign-ups per hour (429
/// beyond it), and at most `free_grants_per_address_per_day` accounts per client address
/// (IPv4 address or IPv6 /64) and day get the free credits. Later ones are still created,
/// with 0 credits and [`Registered::free_credits_withheld`] set: refusing them would turn
/// away real customers behind a shared network, and it is the free credits that are farmed.
pub async fn register(state: &State, reg: Registration<'_>) -> AppResult<Registered> {
    let email = Email::parse(reg.email)?;
    let password = reg.password.map(NewPassword::parse).transpose()?;
    let name = parse_name(reg.name)?;
    check_signup_rate(state).await?;
    let address = reg
        .from
        .map(|ip| auth::rate_limit::ClientKey::of(ip).to_string());
    let password_hash = match password {
        Some(p) => Some(password::hash(&state.hashers, p.expose().to_string()).await?),
        None => None,
    };
    create(state, &email, name, password_hash, reg.first_key, address).await
}

/// The deployment's sign-ups per hour: this process's own count first (a flood costs the
/// database nothing), then the one every server sharing the database holds.
pub async fn check_signup_rate(state: &State) -> AppResult<()> {
    state
        .signup_limit
        .check(&())
        .map_err(AppError::RateLimited)?;
    let per_hour = state.config.signups_per_hour;
    let now = crate::store::now_ms();
    match state
        .store
        .take_allowance("signup", per_hour, 3_600_000, now)
        .await?
    {
        Some(wait_ms) => Err(AppError::RateLimited(std::time::Duration::from_millis(
            wait_ms as u64,
        ))),
        None => Ok(()),
    }
}

/// Creates the account once its details are checked and its password hashed (by
/// [`register`], or by a sign-up that waited for its mailed link). `address` is the client's
/// (as `ClientKey` writes it) for the cap on free-credit grants.
pub async fn create(
    state: &State,
    email: &Email,
    name: Option<String>,
    password_hash: Option<String>,
    first_key: Option<&str>,
    address: Option<String>,
) -> AppResult<Registered> {
    let grant_cap = state.config.free_grants_per_address_per_day;
    let user_id = UserId::generate();
    let key = match first_key {
        Some(label) => Some(keys::prepare(state, &user_id, Some(label), None)?),
        None => None,
    };
    let account = NewAccount {
        id: user_id,
        email: email.as_str().to_string(),
        email_normalized: email.normalized().to_string(),
        name,
        password_hash,
        created_at: crate::store::now_ms(),
        free_credits: state.config.free_credits,
        grant_address: address,
        grant_cap,
        first_key: key.as_ref().map(|k| k.row.clone()),
    };
    let CreatedAccount {
        user,
        free_credits_withheld,
    } =
        state.store.create_account(account).await?.ok_or_else(|| {
            AppError::Conflict("an account with this email already exists".into())
        })?;
    tracing::info!(user_id = %user.id, free_credits_withheld, "registered a new account");
    Ok(Registered {
        user,
        key,
        free_credits_withheld,
    })
}

/// Email + password. Every failure is the same `BadCredentials`, and takes as long, whether
/// the email is unknown, has no password, or the password is wrong.
pub async fn login_with_password(state: &State, email: &str, password: &str) -> AppResult<User> {
    let normalized = Email::parse(email)
        .map(|e| e.normalized().to_string())
        .unwrap_or_default();
    let found = state.store.user_by_email(&normalized).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    if password::verify(&state.hashers, password.to_string(), hash).await {
        user.ok_or(AppError::BadCredentials)
    } else {
        Err(AppError::BadCredentials)
    }
}

/// Logs in with an API key (the `login` operation, so a key its holder restricted to, say,
/// `simulate` cannot be turned into a full dashboard session).
pub async fn login_with_key(state: &State, key: &str) -> AppResult<(User, Principal)> {
    if key.trim().is_empty() {
        return Err(AppError::Auth(auth::AuthError::Missing));
    }
    let principal =
        auth::authenticate_key(state, key.to_string(), RequestFacts::op("login")).await?;
    let user = user(&state.store, &principal.user_id).await?;
    Ok((user, principal))
}

/// The account by id (e.g. to show the current balance).
pub async fn user(store: &Store, user_id: &UserId) -> AppResult<User> {
    store
        .user(user_id)
        .await?
        .ok_or(AppError::NotFound("account"))
}

/// Adds credits to an account outside Stripe (operators, support, the free grant): one
/// ledger row. Returns the new balance.
pub async fn grant_credits(
    state: &State,
    user_id: &UserId,
    credits: Credits,
    reason: &str,
) -> AppResult<Credits> {
    if credits == Credits::ZERO {
        return Err(AppError::Invalid(
            "the number of credits to grant must be positive".into(),
        ));
    }
    state
        .store
        .grant_credits(user_id, credits, reason)
        .await?
        .ok_or(AppError::NotFound("account"))
}

/// Counts a login or registration attempt from this client address against its limit.
pub fn throttle(state: &State, ip: std::net::IpAddr) -> AppResult<()> {
    state
        .auth_limit
        .check(&auth::rate_limit::ClientKey::of(ip))
        .map_err(AppError::RateLimited)
}

/// The account with this email (operators' tools).
pub async fn find_by_email(store: &Store, email: &str) -> AppResult<User> {
    let email = Email::parse(email)?;
    store
        .user_by_email(email.normalized())
        .await?
        .map(|(user, _)| user)
        .ok_or(AppError::NotFound("account"))
}
