//! A request string that must be a JSON string.
//!
//! poem-openapi's `String` also takes a number or a boolean and turns it into text, so
//! `{"label": 5}` would make a key labelled "5" and `{"fmu_id": 1}` look up a model named
//! "1". The spec says `string`; a client sending anything else has a bug we should show it,
//! so request bodies use [`Text`], which takes a string and nothing else.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};

/// A JSON string, only a string (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(pub String);

impl Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        String::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        String::schema_ref()
    }

    fn register(registry: &mut Registry) {
        String::register(registry);
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            serde_json::Value::String(text) => Ok(Text(text)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(serde_json::Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ParseFromJSON;
    use serde_json::json;

    use super::Text;

    #[test]
    fn only_a_string_is_text() {
        assert_eq!(
            Text::parse_from_json(Some(json!("ok"))).unwrap(),
            Text("ok".into())
        );
        for wrong in [json!(5), json!(true), json!(null), json!(["a"]), json!({})] {
            assert!(
                Text::parse_from_json(Some(wrong.clone())).is_err(),
                "{wrong}"
            );
        }
    }
}
