//! The JSON request body of a `/api/v1` operation: poem-openapi's `Json<T>` with one rule
//! more — `null` is not a value.
//!
//! poem-openapi reads `{"tolerance": null}` as "tolerance left out", while the spec says
//! `tolerance` is a number: a client sending `null` has a bug (or a serialiser that writes
//! `None` as `null`) and should hear of it rather than have its value silently replaced by
//! the model's default. Answers never carry `null` either, so the rule is the same both ways:
//! leave out what you do not set.

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::error::ParseRequestPayloadError;
use poem_openapi::payload::{Json, ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use serde_json::Value;

/// A JSON body of type `T` without `null` anywhere in it.
pub struct JsonBody<T>(pub T);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = <Json<T> as Payload>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        <Json<T> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromJSON> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = Vec::<u8>::from_request(request, body).await?;
        let malformed = |reason: String| ParseRequestPayloadError { reason };
        let value: Value = serde_json::from_slice(&data).map_err(|e| malformed(e.to_string()))?;
        if let Some(path) = first_null(&value, String::new()) {
            return Err(malformed(format!(
                "field `{path}` is null: leave out a field you do not set"
            ))
            .into());
        }
        T::parse_from_json(Some(value))
            .map(JsonBody)
            .map_err(|e| malformed(e.into_message()).into())
    }
}

poem_openapi::impl_apirequest_for_payload!(JsonBody<T>, T: ParseFromJSON);

/// Where the first `null` in `value` is: `tolerance`, `start_values.e`, `inputs[0].t[2]`.
fn first_null(value: &Value, at: String) -> Option<String> {
    match value {
        Value::Null => Some(at),
        Value::Object(fields) => fields.iter().find_map(|(name, v)| {
            let path = if at.is_empty() {
                name.clone()
            } else {
                format!("{at}.{name}")
            };
            first_null(v, path)
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| first_null(v, format!("{at}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::first_null;

    #[test]
    fn the_first_null_is_named_by_its_path() {
        assert_eq!(
            first_null(&json!({"a": 1, "b": [1, {"c": "x"}]}), String::new()),
            None
        );
        assert_eq!(
            first_null(&json!({"tolerance": null}), String::new()).as_deref(),
            Some("tolerance")
        );
        assert_eq!(
            first_null(&json!({"inputs": [{"t": [0, null]}]}), String::new()).as_deref(),
            Some("inputs[0].t[1]")
        );
        assert_eq!(first_null(&json!(null), String::new()).as_deref(), Some(""));
    }
}
