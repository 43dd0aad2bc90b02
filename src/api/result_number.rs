//! A value in a run's JSON results: a number, or the name of a non-finite one.
//!
//! NaN and ±∞ are legal simulation results (a model that overflows, a 0/0), but JSON has no
//! such numbers: poem-openapi's `f64` would leave them out of an array (shifting every later
//! value to the wrong time) and serde_json would write `null` (losing which it was). So a
//! result value is [`ResultNumber`], whose schema is `oneOf: [number, NonFiniteNumber]`, the
//! latter the enum `"NaN"`, `"Infinity"`, `"-Infinity"` (client generators make it
//! `Union[float, NonFiniteNumber]`). The streamed results (`sim::result_file`) and the
//! compatibility routes write the same names, from `format::non_finite_name`.

use std::borrow::Cow;

use poem_openapi::Enum;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};

use crate::format::{from_non_finite_name, non_finite_name};

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

/// One value of a result column (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResultNumber(pub f64);

impl Type for ResultNumber {
    const IS_REQUIRED: bool = true;
    type RawValueType = f64;
    type RawElementValueType = f64;

    fn name() -> Cow<'static, str> {
        "number_or_NonFiniteNumber".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some(
                "A number, or for a value that is not finite the string `NaN`, `Infinity` or \
                 `-Infinity` (JSON has no such numbers).",
            ),
            one_of: vec![f64::schema_ref(), NonFiniteNumber::schema_ref()],
            ..MetaSchema::ANY
        }))
    }

    fn register(registry: &mut Registry) {
        NonFiniteNumber::register(registry);
    }

    fn as_raw_value(&self) -> Option<&f64> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a f64> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ToJSON for ResultNumber {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(match non_finite_name(self.0) {
            Some(name) => serde_json::Value::String(name.into()),
            None => serde_json::Number::from_f64(self.0)?.into(),
        })
    }
}

impl ParseFromJSON for ResultNumber {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            serde_json::Value::Number(n) => n
                .as_f64()
                .map(ResultNumber)
                .ok_or_else(|| ParseError::custom("not a number")),
            serde_json::Value::String(name) => from_non_finite_name(&name)
                .map(ResultNumber)
                .ok_or_else(|| ParseError::custom("expected NaN, Infinity or -Infinity")),
            other => Err(ParseError::expected_type(other)),
        }
    }
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
            one_of: vec![
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
    fn every_value_is_written_and_read_back() {
        for (v, written) in [
            (1.5, json!(1.5)),
            (-0.0, json!(-0.0)),
            (2.47e-321, json!(2.47e-321)),
            (f64::INFINITY, json!("Infinity")),
            (f64::NEG_INFINITY, json!("-Infinity")),
        ] {
            assert_eq!(ResultNumber(v).to_json(), Some(written.clone()));
            let back = ResultNumber::parse_from_json(Some(written)).unwrap();
            assert_eq!(back.0.to_bits(), v.to_bits());
        }
        assert_eq!(ResultNumber(f64::NAN).to_json(), Some(json!("NaN")));
        assert!(
            ResultNumber::parse_from_json(Some(json!("NaN")))
                .unwrap()
                .0
                .is_nan()
        );
        for wrong in [json!("nan"), json!("inf"), json!(null), json!(true)] {
            assert!(
                ResultNumber::parse_from_json(Some(wrong.clone())).is_err(),
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
