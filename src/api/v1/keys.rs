//! `/api/v1/keys`: list, create and revoke API keys; the root public key.

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::api::auth::{Authed, ManageKeys};
use crate::api::body::JsonBody;
use crate::api::error::{OpError, declare_errors};
use crate::api::text::Text;
use crate::domain::ids::KeyId;
use crate::state::State;
use crate::store::api_keys::KeyRow;

#[derive(Tags)]
enum Tag {
    /// API keys (biscuit tokens).
    Keys,
}

/// An API key (never its secret).
#[derive(Object)]
#[oai(example)]
pub struct ApiKeyInfo {
    /// The key id, named inside the token (`key_…`). Not a secret.
    pub id: String,
    pub label: String,
    pub created_at: String,
    #[oai(skip_serializing_if_is_none)]
    pub expires_at: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub last_used_at: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub revoked_at: Option<String>,
    /// False once revoked or expired.
    pub active: bool,
    /// Billable runs made with this key.
    pub run_count: i64,
}

impl From<KeyRow> for ApiKeyInfo {
    fn from(k: KeyRow) -> Self {
        ApiKeyInfo {
            active: crate::domain::keys::KeyState::of_row(&k).is_active(),
            id: k.id.to_string(),
            label: k.label,
            created_at: crate::api::time(k.created_at),
            expires_at: k.expires_at.map(crate::api::time),
            last_used_at: k.last_used_at.map(crate::api::time),
            revoked_at: k.revoked_at.map(crate::api::time),
            run_count: k.run_count,
        }
    }
}

#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct NewKeyRequest {
    /// A name to tell keys apart: at most 64 characters, none of them a control character;
    /// default "API key".
    #[oai(
        skip_serializing_if_is_none,
        validator(max_length = 64, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")
    )]
    pub label: Option<Text>,
}

/// A new API key with its secret, shown this once.
#[derive(Object)]
#[oai(example)]
pub struct CreatedKey {
    pub key: ApiKeyInfo,
    /// The secret. Shown this once: it is not stored and cannot be shown again.
    pub api_key: String,
}

/// The root public key API keys are signed with.
#[derive(Object)]
#[oai(example)]
pub struct PublicKeyInfo {
    pub algorithm: String,
    /// In biscuit's text form, as `biscuit inspect --public-key` takes it.
    pub public_key: String,
}

#[derive(ApiResponse)]
enum CreateResponse {
    #[oai(status = 201)]
    Created(Json<CreatedKey>),
}

declare_errors! {
    /// `GET /keys`.
    ListKeysErrors: [UNAUTHORIZED, FORBIDDEN];
    /// `POST /keys`: a label too long or with a control character is 400 (the spec states
    /// both).
    CreateKeyErrors: [
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
    ];
    /// `POST /keys/{id}/revoke`.
    RevokeKeyErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND];
}

pub struct KeysApi;

#[OpenApi(tag = "Tag::Keys")]
impl KeysApi {
    /// Your API keys, active first.
    ///
    /// Secrets are never listed (only their ids): a key's secret is shown once, when it is
    /// created.
    #[oai(path = "/keys", method = "get", operation_id = "listKeys")]
    async fn list(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageKeys>,
    ) -> Result<Json<Vec<ApiKeyInfo>>, OpError<ListKeysErrors>> {
        let keys = crate::domain::keys::list(&state.store, &auth.principal.user_id).await?;
        Ok(Json(keys.into_iter().map(Into::into).collect()))
    }

    /// Creates an API key; the answer holds its secret, once.
    ///
    /// Store `api_key` at once: only its id is kept, so it cannot be shown again. An attenuated
    /// key (one carrying restrictions) cannot create keys.
    #[oai(path = "/keys", method = "post", operation_id = "createKey")]
    async fn create(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageKeys>,
        body: JsonBody<NewKeyRequest>,
    ) -> Result<CreateResponse, OpError<CreateKeyErrors>> {
        let key = crate::domain::keys::create(
            &state,
            &auth.principal.user_id,
            body.0.label.as_ref().map(|l| l.0.as_str()),
            None,
        )
        .await?;
        Ok(CreateResponse::Created(Json(CreatedKey {
            key: key.row.into(),
            api_key: key.token,
        })))
    }

    /// Revokes a key at once.
    ///
    /// The key, and every token attenuated from it offline, stops working for every request
    /// that follows. Revoking a key already revoked answers it again, unchanged.
    #[oai(path = "/keys/:id/revoke", method = "post", operation_id = "revokeKey")]
    async fn revoke(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageKeys>,
        id: Path<String>,
    ) -> Result<Json<ApiKeyInfo>, OpError<RevokeKeyErrors>> {
        let row =
            crate::domain::keys::revoke(&state.store, &auth.principal.user_id, &KeyId::from(id.0))
                .await?;
        Ok(Json(row.into()))
    }

    /// The root public key, for verifying keys offline (no authentication).
    ///
    /// API keys are biscuit tokens signed by this key: a client can check a key's signature and
    /// read its restrictions without a request, or attenuate it further before handing it on.
    #[oai(
        path = "/keys/public-key",
        method = "get",
        operation_id = "getPublicKey"
    )]
    async fn public_key(&self, state: poem::web::Data<&State>) -> Json<PublicKeyInfo> {
        Json(PublicKeyInfo {
            algorithm: "ed25519".into(),
            public_key: state.keys.public_key(),
        })
    }
}
