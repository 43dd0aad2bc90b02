//! `GET /api/v1/me`: the account behind the key.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use crate::api::auth::{Authed, ReadAccount};
use crate::api::error::{OpError, declare_errors};
use crate::state::State;

#[derive(Tags)]
enum Tag {
    /// The account behind the API key.
    Account,
}

/// The account behind the key: its credits and storage.
#[derive(Object)]
#[oai(example)]
pub struct Account {
    pub user_id: String,
    pub email: String,
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
    /// Credits available to spend on runs.
    pub credits: i64,
    pub created_at: String,
    /// The key this request was made with.
    #[oai(skip_serializing_if_is_none)]
    pub api_key_id: Option<String>,
    /// Bytes your uploaded FMUs take on disk (each `.fmu` and its extracted files).
    pub storage_used_bytes: i64,
    /// The most your uploads may take; an upload past it is refused with 413
    /// `storage_quota_exceeded`.
    pub storage_quota_bytes: u64,
}

declare_errors! {
    /// `GET /me`.
    GetAccountErrors: [UNAUTHORIZED, FORBIDDEN];
}

pub struct AccountApi;

#[OpenApi(tag = "Tag::Account")]
impl AccountApi {
    /// The account behind the key, with its credit balance.
    ///
    /// Also says which key made the request (`api_key_id`) and how much of the storage quota
    /// your uploads use.
    #[oai(path = "/me", method = "get", operation_id = "getAccount")]
    async fn me(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadAccount>,
    ) -> Result<Json<Account>, OpError<GetAccountErrors>> {
        let user = crate::domain::accounts::user(&state.store, &auth.principal.user_id).await?;
        let used = crate::domain::fmus::storage_used(&state, &user.id).await?;
        Ok(Json(Account {
            user_id: user.id.to_string(),
            email: user.email,
            name: user.name,
            credits: user.credits.get(),
            created_at: crate::api::time(user.created_at),
            api_key_id: auth.principal.key_id.map(String::from),
            storage_used_bytes: used,
            storage_quota_bytes: state.config.storage_quota_bytes,
        }))
    }
}
