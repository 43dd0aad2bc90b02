//! API-key authentication for the JSON API, as poem-openapi extractors.
//!
//! [`ApiKey`] takes the raw key from `Authorization: Bearer` or `X-API-Key` (both documented
//! as security schemes in the spec). [`Authed<Op>`] also verifies it for operation `Op`, so a
//! handler that takes `Authed<ReadUsage>` only runs for a key allowed to read usage.

use std::marker::PhantomData;

use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

use crate::api::error::ApiError;
use crate::auth::tokens::RequestFacts;
use crate::auth::{self, AuthError, Principal};
use crate::state::State;

const BEARER: &str = "BearerKey";
const HEADER: &str = "ApiKeyHeader";

/// The API key sent with a request, not yet verified.
pub struct ApiKey(pub String);

/// A caller verified for operation `O`.
pub struct Authed<O> {
    pub principal: Principal,
    _op: PhantomData<O>,
}

/// An operation name that keys can be restricted to with `check if operation("…")`.
pub trait Operation: Send + Sync {
    const NAME: &'static str;
}

macro_rules! operations {
    ($($ty:ident => $name:literal),* $(,)?) => {
        $(
            #[doc = concat!("The `", $name, "` operation.")]
            pub struct $ty;
            impl Operation for $ty { const NAME: &'static str = $name; }
        )*
    };
}

operations! {
    ReadAccount => "read_account",
    ReadUsage => "read_usage",
    ManageKeys => "manage_keys",
    ReadFmus => "read_fmus",
    ManageFmus => "manage_fmus",
    ReadRuns => "read_runs",
    ReadBilling => "read_billing",
    ManageBilling => "manage_billing",
    ReadWebhooks => "read_webhooks",
    ManageWebhooks => "manage_webhooks",
}

fn register_schemes(registry: &mut Registry) {
    registry.create_security_scheme(
        BEARER,
        MetaSecurityScheme {
            ty: "http",
            description: Some("An API key (`fmugw_…`) as a bearer token."),
            name: None,
            key_in: None,
            scheme: Some("bearer"),
            bearer_format: Some("biscuit"),
            flows: None,
            openid_connect_url: None,
        },
    );
    registry.create_security_scheme(
        HEADER,
        MetaSecurityScheme {
            ty: "apiKey",
            description: Some("An API key (`fmugw_…`) in the `X-API-Key` header."),
            name: Some("X-API-Key"),
            key_in: Some("header"),
            scheme: None,
            bearer_format: None,
            flows: None,
            openid_connect_url: None,
        },
    );
}

impl<'a> ApiExtractor<'a> for ApiKey {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_schemes(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![BEARER, HEADER]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        match auth::key_from_headers(req.headers()) {
            Some(key) if !key.is_empty() => Ok(ApiKey(key)),
            _ => Err(ApiError::from(AuthError::Missing).into()),
        }
    }
}

impl<'a, O: Operation> ApiExtractor<'a> for Authed<O> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        register_schemes(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![BEARER, HEADER]
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let ApiKey(key) = ApiKey::from_request(req, body, opts).await?;
        let state = req.data::<State>().ok_or_else(|| {
            poem::Error::from_string(
                "state missing",
                poem::http::StatusCode::INTERNAL_SERVER_ERROR,
            )
        })?;
        let principal = auth::authenticate_key(state, key, RequestFacts::op(O::NAME))
            .await
            .map_err(ApiError::from)?;
        Ok(Authed {
            principal,
            _op: PhantomData,
        })
    }
}
