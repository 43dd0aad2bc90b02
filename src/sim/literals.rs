//! Start values and input samples checked against their variable's type, range and shape,
//! and written as the worker sets them.
//!
//! Every face gives a start value as text (the API turns its JSON into it): a number, `true`
//! or `false`, any text for a String, hex for a Binary, an item's name (or value) for an
//! enumeration, and for an array its elements as a JSON array (`[1, 2, 3]`, nested as the
//! shape is, or flat) or separated by spaces as a model description's `start` attribute is.
//! The worker gets one canonical literal: fmi-rs's, elements separated by spaces, Booleans
//! `true`/`false`, enumerations by value, Binary in lowercase hex.

use crate::fmi::describe::{Dimension, ModelInfo, Variable};
use crate::format::Number;

use super::recorded::{Storage, ValueType};

/// Most elements an array start value or a recorded array may have.
pub const MAX_ARRAY_ELEMENTS: u64 = 1_000_000;

/// The sizes structural parameters give, with the values this request sets for them.
pub struct Sizes<'a> {
    info: &'a ModelInfo,
    /// (structural parameter, its value in this request).
    set: Vec<(&'a str, u64)>,
}

impl<'a> Sizes<'a> {
    /// The sizes of `info`'s arrays with the structural parameters set by `start_values`
    /// (each `(name, literal)`; the literals are checked as start values elsewhere).
    pub fn new(info: &'a ModelInfo, start_values: &'a [(String, String)]) -> Sizes<'a> {
        let set = start_values
            .iter()
            .filter_map(|(name, literal)| {
                let var = info.resolve(name)?;
                let size = literal.trim().parse::<u64>().ok()?;
                (var.causality == "structuralParameter").then_some((var.name.as_str(), size))
            })
            .collect();
        Sizes { info, set }
    }

    /// The variable's shape: empty for a scalar; an error saying why it has none.
    pub fn shape(&self, var: &Variable) -> Result<Vec<u64>, String> {
        if var.shape.len() != var.dimensions {
            return Err(format!(
                "'{}' is an array stored before this server read array shapes: upload the FMU again",
                var.name
            ));
        }
        let mut shape = Vec::with_capacity(var.shape.len());
        for d in &var.shape {
            shape.push(match d {
                Dimension::Fixed(n) => *n,
                Dimension::Parameter(p) => match self.set.iter().find(|(n, _)| n == p) {
                    Some((_, v)) => *v,
                    None => self
                        .info
                        .variable(p)
                        .and_then(|v| v.start.as_deref())
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .ok_or_else(|| {
                            format!("the size of '{}' comes from '{p}', which has no start value: set it", var.name)
                        })?,
                },
            });
        }
        let elements = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .filter(|&n| n <= MAX_ARRAY_ELEMENTS);
        if elements.is_none() {
            return Err(format!(
                "'{}' would have {} elements, more than the {MAX_ARRAY_ELEMENTS} an array may have",
                var.name,
                shape_text(&shape)
            ));
        }
        Ok(shape)
    }
}

/// The variable's type, or why it has no value to set or record (a Clock).
pub fn value_type(var: &Variable) -> Result<ValueType, String> {
    ValueType::from_fmi(&var.r#type).ok_or_else(|| {
        format!(
            "'{}' is a {}, which has no value between events",
            var.name, var.r#type
        )
    })
}

/// A start value for `var` of `shape`, as the worker's literal; or what is wrong with it.
pub fn start_literal(var: &Variable, shape: &[u64], literal: &str) -> Result<String, String> {
    let t = value_type(var)?;
    if shape.is_empty() {
        return element(var, t, literal, false);
    }
    let elements = array_elements(var, shape, literal)?;
    let expected: u64 = shape.iter().product();
    if elements.len() as u64 != expected {
        return Err(format!(
            "'{}' has {expected} elements ({}), and {} were given",
            var.name,
            shape_text(shape),
            elements.len()
        ));
    }
    let literals = elements
        .iter()
        .map(|e| element(var, t, e, true))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(literals.join(" "))
}

/// A shape as `3` or `2 × 3`.
pub fn shape_text(shape: &[u64]) -> String {
    shape
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" × ")
}

/// The element texts of an array start value: a JSON array (nested or flat) or elements
/// separated by spaces.
fn array_elements(var: &Variable, shape: &[u64], literal: &str) -> Result<Vec<String>, String> {
    let text = literal.trim();
    if !text.starts_with('[') {
        return Ok(text.split_whitespace().map(str::to_owned).collect());
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("start value for '{}' is not a JSON array: {e}", var.name))?;
    let mut out = Vec::new();
    flatten(&var.name, &value, shape, true, &mut out)?;
    Ok(out)
}

/// Flattens a JSON array row-major. A nested array must have the variable's shape exactly; a
/// flat one any length (counted by the caller).
fn flatten(
    name: &str,
    value: &serde_json::Value,
    shape: &[u64],
    top: bool,
    out: &mut Vec<String>,
) -> Result<(), String> {
    use serde_json::Value as J;
    match value {
        J::Array(items) => {
            let nested = items.iter().any(J::is_array);
            if !nested {
                if !top && shape.first().is_some_and(|&n| n != items.len() as u64) {
                    return Err(format!(
                        "a row of '{name}' has {} elements, not {}",
                        items.len(),
                        shape[0]
                    ));
                }
                for item in items {
                    flatten(name, item, &[], false, out)?;
                }
                return Ok(());
            }
            if shape.len() < 2 || shape[0] != items.len() as u64 {
                return Err(format!(
                    "the nesting of the start value for '{name}' does not match its shape"
                ));
            }
            for item in items {
                flatten(name, item, &shape[1..], false, out)?;
            }
            Ok(())
        }
        J::Number(n) => {
            out.push(n.to_string());
            Ok(())
        }
        J::Bool(b) => {
            out.push(b.to_string());
            Ok(())
        }
        J::String(s) => {
            out.push(s.clone());
            Ok(())
        }
        J::Null | J::Object(_) => Err(format!(
            "an element of the start value for '{name}' must be a number, boolean or string"
        )),
    }
}

/// One element (or a scalar) checked against the type and `min`/`max`, as the worker's
/// literal. In an array (`in_array`) a String cannot hold spaces: fmi-rs separates elements
/// with them.
fn element(var: &Variable, t: ValueType, text: &str, in_array: bool) -> Result<String, String> {
    let name = &var.name;
    let wrong = |expected: &str| format!("start value '{text}' for '{name}' is not {expected}");
    let trimmed = text.trim();
    match t.storage() {
        Storage::Float => {
            let v: f64 = trimmed
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| wrong("a number"))?;
            if t == ValueType::Float32 && v.abs() > f64::from(f32::MAX) {
                return Err(format!(
                    "start value {text} for '{name}' is outside the range of a Float32"
                ));
            }
            bounds(var, text, v)?;
            Ok(Number(v).to_string())
        }
        Storage::Int | Storage::UInt => {
            let v = if t == ValueType::Enumeration {
                enumeration(var, trimmed)?
            } else {
                trimmed
                    .parse::<i128>()
                    .map_err(|_| wrong("a whole number"))?
            };
            let (lo, hi) = t.integer_range().expect("an integer type");
            if v < lo || v > hi {
                return Err(format!(
                    "start value {text} for '{name}' is outside the range of {} ({lo} to {hi})",
                    var.r#type
                ));
            }
            bounds(var, text, v as f64)?;
            Ok(v.to_string())
        }
        Storage::Bool => match trimmed {
            "true" | "1" => Ok("true".into()),
            "false" | "0" => Ok("false".into()),
            _ => Err(wrong("true or false")),
        },
        Storage::Text => {
            if in_array && text.contains(char::is_whitespace) {
                return Err(format!(
                    "an element of the start value for '{name}' contains a space, which a String array element cannot hold here"
                ));
            }
            Ok(text.to_owned())
        }
        Storage::Bytes => {
            let hex = trimmed;
            if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(wrong("hexadecimal bytes (two digits a byte, e.g. 0a1b)"));
            }
            Ok(hex.to_ascii_lowercase())
        }
    }
}

/// An enumeration value given by an item's name or value; only the type's items are values.
fn enumeration(var: &Variable, text: &str) -> Result<i128, String> {
    if let Some(item) = var.items.iter().find(|i| i.name == text) {
        return Ok(item.value.into());
    }
    match text.parse::<i64>() {
        Ok(v) if var.items.is_empty() || var.items.iter().any(|i| i.value == v) => Ok(v.into()),
        _ => {
            let names: Vec<String> = var
                .items
                .iter()
                .map(|i| format!("'{}' ({})", i.name, i.value))
                .collect();
            Err(format!(
                "start value '{text}' for '{}' is not one of its items: {}",
                var.name,
                names.join(", ")
            ))
        }
    }
}

fn bounds(var: &Variable, text: &str, v: f64) -> Result<(), String> {
    if let Some(min) = var.min
        && v < min
    {
        return Err(format!(
            "start value {text} for '{}' is below its minimum {}",
            var.name,
            Number(min)
        ));
    }
    if let Some(max) = var.max
        && v > max
    {
        return Err(format!(
            "start value {text} for '{}' is above its maximum {}",
            var.name,
            Number(max)
        ));
    }
    Ok(())
}

/// Whether an input signal of `var` can carry `u`, or why not: any finite number for a
/// float, a whole number in range (an item's value for an enumeration) for an integer, 0 or
/// 1 for a Boolean. Text and arrays are set with start values, not signals.
pub fn input_sample(var: &Variable, u: f64) -> Result<(), String> {
    let t = value_type(var)?;
    if !var.shape.is_empty() || var.dimensions > 0 {
        return Err(format!(
            "'{}' is an array: input signals drive scalars; give the array a start value",
            var.name
        ));
    }
    match t.storage() {
        Storage::Float => Ok(()),
        Storage::Bool if u == 0.0 || u == 1.0 => Ok(()),
        Storage::Bool => Err(format!(
            "input '{}' is a Boolean: its values must be 0 or 1, not {}",
            var.name,
            Number(u)
        )),
        Storage::Int | Storage::UInt => {
            let (lo, hi) = t.integer_range().expect("an integer type");
            let whole = u.fract() == 0.0 && u >= lo as f64 && u <= hi as f64;
            let item = t != ValueType::Enumeration
                || var.items.is_empty()
                || var.items.iter().any(|i| i.value as f64 == u);
            if whole && item {
                Ok(())
            } else {
                Err(format!(
                    "input '{}' is an {}: {} is not one of its values",
                    var.name,
                    var.r#type,
                    Number(u)
                ))
            }
        }
        Storage::Text | Storage::Bytes => Err(format!(
            "input '{}' is a {}: input signals carry numbers; give it a start value",
            var.name, var.r#type
        )),
    }
}
