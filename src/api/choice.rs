//! A request value naming one item of a domain enum (an interface, a solver, a run status).
//!
//! The spec shows it exactly as the API's `Enum` mirror of the domain type, so the allowed
//! names are listed; but the value is parsed by the domain type's `FromStr`, the one parser
//! every face shares (with the older spellings it keeps accepting), and a value it refuses is
//! kept, so the handler answers 400 with a problem naming the field (the framework's own 400
//! would only say the value failed to parse).

use std::borrow::Cow;
use std::marker::PhantomData;
use std::str::FromStr;

use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};

use crate::domain::Invalid;
use crate::sim::plan::Problem;

/// An API `Enum` (documentation only) paired with the domain type it names.
pub trait Names: Type {
    type Domain: FromStr<Err = Invalid> + Clone + Send + Sync;
}

/// What the caller sent for one field of type `E`: the domain value, or why it is none.
pub struct Choice<E: Names> {
    raw: String,
    parsed: Result<E::Domain, Invalid>,
    schema: PhantomData<E>,
}

impl<E: Names> Choice<E> {
    fn new(raw: String) -> Self {
        Choice {
            parsed: raw.parse(),
            raw,
            schema: PhantomData,
        }
    }

    /// The value, or the problem with `field` to report.
    pub fn value(&self, field: &str) -> Result<E::Domain, Problem> {
        self.parsed
            .clone()
            .map_err(|Invalid(message)| Problem::new(field, message))
    }
}

impl<E: Names> Clone for Choice<E> {
    fn clone(&self) -> Self {
        Choice::new(self.raw.clone())
    }
}

impl<E: Names> Type for Choice<E> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        E::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        E::schema_ref()
    }

    fn register(registry: &mut Registry) {
        E::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

/// Any string is taken (and judged by the domain parser); anything else is a malformed
/// request, as for every other string field.
impl<E: Names> ParseFromJSON for Choice<E> {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            serde_json::Value::String(raw) => Ok(Choice::new(raw)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl<E: Names> ParseFromParameter for Choice<E> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(Choice::new(value.to_string()))
    }
}

/// As it was sent.
impl<E: Names> ToJSON for Choice<E> {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(serde_json::Value::String(self.raw.clone()))
    }
}
