//! A value in a run's JSON results ([`ResultValue`]): a value of its column's type, or for a
//! float that is not finite, its name.
//!
//! NaN and ±∞ are legal simulation results (a model that overflows, a 0/0), but JSON has no
//! such numbers: poem-openapi's `f64` would leave them out of an array (shifting every later
//! value to the wrong time) and serde_json would write `null` (losing which it was). So they
//! are the strings of [`NonFiniteNumber`], `"NaN"`, `"Infinity"`, `"-Infinity"`. The streamed
//! results (`sim::result_file`) and the compatibility routes write the same names, from
//! `format::non_finite_name`.

use std::borrow::Cow;

use poem_openapi::Enum;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};

/// A result value that is not a finite number, written by name in place of the number:
/// `NaN`, `Infinity` or `-Infinity`.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFiniteNumber {
    #[oai(rename = "NaN")]
    NaN,
    #[oai(rename = "Infinity")]
    Infinity,
    #[oai(rename = "-Infinity")]
    NegativeInfinity,
}

/// One value of a result column, of the column's type: a number (or the name of a
/// non-finite one), an integer, a Boolean, a string (a String's text, a Binary's bytes in
/// lowercase hex, an enumeration's item name), or for an array variable an array of these
/// nested as its shape. The streamed result (`sim::result_file`) writes the same JSON; an
/// inline result is that JSON read back, so the two cannot differ.
#[derive(Clone, Debug, PartialEq)]
pub struct ResultValue(pub serde_json::Value);

impl Type for ResultValue {
    const IS_REQUIRED: bool = true;
    type RawValueType = serde_json::Value;
    type RawElementValueType = serde_json::Value;

    fn name() -> Cow<'static, str> {
        "ResultValue".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let array = MetaSchema {
            description: Some("An array variable's value, nested as its shape."),
            items: Some(Box::new(MetaSchemaRef::Inline(Box::new(MetaSchema::ANY)))),
            ..MetaSchema::new("array")
        };
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some(
                "A value of the column's type (see `types`): a number, or for a float that is \
                 not finite the string `NaN`, `Infinity` or `-Infinity`; an integer; a \
                 boolean; a string (String text, Binary as lowercase hex, an enumeration's item \
                 name); for an array variable, an array of these nested as its shape.",
            ),
            // anyOf: an integer is also a number, and "NaN" also a string.
            any_of: vec![
                f64::schema_ref(),
                NonFiniteNumber::schema_ref(),
                i64::schema_ref(),
                bool::schema_ref(),
                String::schema_ref(),
                MetaSchemaRef::Inline(Box::new(array)),
            ],
            ..MetaSchema::ANY
        }))
    }

    fn register(registry: &mut Registry) {
        NonFiniteNumber::register(registry);
    }

    fn as_raw_value(&self) -> Option<&serde_json::Value> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a serde_json::Value> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ToJSON for ResultValue {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(self.0.clone())
    }
}

impl ParseFromJSON for ResultValue {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            v @ (serde_json::Value::Null | serde_json::Value::Object(_)) => {
                Err(ParseError::expected_type(v))
            }
            v => Ok(ResultValue(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn result_values_are_written_as_given_and_null_is_refused() {
        for v in [
            json!(1.5),
            json!(-9223372036854775808i64),
            json!("NaN"),
            json!([[1, 2]]),
        ] {
            assert_eq!(ResultValue(v.clone()).to_json(), Some(v.clone()));
            assert_eq!(ResultValue::parse_from_json(Some(v.clone())).unwrap().0, v);
        }
        for wrong in [json!(null), json!({"a": 1})] {
            assert!(
                ResultValue::parse_from_json(Some(wrong.clone())).is_err(),
                "{wrong}"
            );
        }
    }

    /// The names in the spec's enum are the ones written.
    #[test]
    fn the_enum_lists_the_names_written() {
        let names: Vec<serde_json::Value> = [
            NonFiniteNumber::NaN,
            NonFiniteNumber::Infinity,
            NonFiniteNumber::NegativeInfinity,
        ]
        .iter()
        .map(|n| n.to_json().unwrap())
        .collect();
        assert_eq!(names, crate::format::NON_FINITE_NAMES.map(|n| json!(n)));
    }
}
