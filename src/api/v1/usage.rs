//! `GET /api/v1/usage`: the caller's billable events, paged and sortable.

use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi, Tags};

use crate::api::auth::{Authed, ReadUsage};
use crate::api::error::{OpError, declare_errors};
use crate::domain::ids::KeyId;
use crate::domain::usage::{UsageQuery, UsageSort};
use crate::state::State;
use crate::store::usage::UsageRow;

#[derive(Tags)]
enum Tag {
    /// Billable usage.
    Usage,
}

#[derive(Enum, Clone, Copy, Default)]
#[oai(rename_all = "snake_case")]
pub enum SortBy {
    #[default]
    Date,
    FmuName,
    Credits,
    ApiKeyId,
}

#[derive(Enum, Clone, Copy, Default)]
#[oai(rename_all = "lowercase")]
pub enum Order {
    Asc,
    #[default]
    Desc,
}

/// One charged run.
#[derive(Object)]
#[oai(example)]
pub struct UsageItem {
    pub id: i64,
    pub date: String,
    pub fmu_name: String,
    pub credits: i64,
    #[oai(skip_serializing_if_is_none)]
    pub api_key_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub run_id: Option<String>,
}

impl From<UsageRow> for UsageItem {
    fn from(r: UsageRow) -> Self {
        UsageItem {
            id: r.id,
            date: crate::api::time(r.created_at),
            fmu_name: r.fmu_name,
            credits: r.credits.get(),
            api_key_id: r.api_key_id.map(String::from),
            run_id: r.run_id.map(String::from),
        }
    }
}

/// One page of usage rows.
#[derive(Object)]
#[oai(example)]
pub struct UsageList {
    pub items: Vec<UsageItem>,
    /// Rows matching the filter, over all pages.
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

declare_errors! {
    /// `GET /usage`: a query parameter that does not parse or is out of range is 400.
    ListUsageErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN];
}

pub struct UsageApi;

#[OpenApi(tag = "Tag::Usage")]
impl UsageApi {
    /// Your billable usage, one row per charged run, newest first by default.
    ///
    /// Paged with `limit` and `offset`, sorted by `sort` and `order`, and filtered to one key
    /// with `api_key_id`. `total` counts every matching row.
    #[oai(path = "/usage", method = "get", operation_id = "listUsage")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadUsage>,
        /// Rows per page, 1–500.
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u32>,
        /// Rows to skip (at most 10¹⁵).
        #[oai(default, validator(maximum(value = "1000000000000000")))]
        offset: Query<u64>,
        #[oai(default)] sort: Query<SortBy>,
        #[oai(default)] order: Query<Order>,
        /// Only rows recorded with this key.
        api_key_id: Query<Option<String>>,
    ) -> Result<Json<UsageList>, OpError<ListUsageErrors>> {
        let query = UsageQuery {
            api_key_id: api_key_id.0.map(KeyId::from),
            sort: match sort.0 {
                SortBy::Date => UsageSort::Date,
                SortBy::FmuName => UsageSort::FmuName,
                SortBy::Credits => UsageSort::Credits,
                SortBy::ApiKeyId => UsageSort::ApiKey,
            },
            descending: matches!(order.0, Order::Desc),
        };
        let page = crate::domain::usage::page(
            &state.store,
            &auth.principal.user_id,
            query,
            limit.0,
            offset.0,
        )
        .await?;
        Ok(Json(UsageList {
            items: page.rows.into_iter().map(Into::into).collect(),
            total: page.total,
            limit: page.limit,
            offset: page.offset,
        }))
    }
}

fn default_limit() -> u32 {
    50
}
