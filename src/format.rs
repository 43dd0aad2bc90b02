//! How numbers and user text are written for people and spreadsheets.
//!
//! - [`Number`] writes a float in its shortest round-trip form: the fewest digits that read
//!   back as the same `f64`, in plain notation for everyday magnitudes and in exponent notation
//!   otherwise (`2.47e-321`, not a 326-character decimal; `1e300`, not 301 digits).
//! - Non-finite values (legal simulation results) are written as FMPy writes them in CSV
//!   (`nan`, `inf`, `-inf`), and in JSON, which has no such numbers, as the strings
//!   [`NON_FINITE_NAMES`] (`"NaN"`, `"Infinity"`, `"-Infinity"`: JavaScript's names, which
//!   Python's `json` reads too) in place of the number ([`JsonNumber`]).
//! - [`csv_cell`] neutralises user text that a spreadsheet would run as a formula (OWASP "CSV
//!   injection"): a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
//!   leading `'`. Numbers never pass through it: a negative number is not a formula.

use std::borrow::Cow;
use std::fmt;

/// A float written in its shortest round-trip form (see the module docs). Non-finite values
/// are written as FMPy writes them in CSV (`nan`, `inf`, `-inf`), which Rust, Python and
/// spreadsheets read back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Number(pub f64);

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        let magnitude = v.abs();
        if v.is_nan() {
            // Rust writes `NaN` (and never a sign); FMPy (numpy) writes `nan`.
            return f.write_str("nan");
        }
        // Rust's `{}` and `{:e}` both print the shortest digits that round-trip; `{}` never
        // switches to an exponent, so it is only short for moderate magnitudes. Infinities
        // are `inf` and `-inf`, as FMPy writes them.
        if !v.is_finite() || v == 0.0 || (1e-5..1e16).contains(&magnitude) {
            write!(f, "{v}")
        } else {
            write!(f, "{v:e}")
        }
    }
}

/// A Float32 value written as [`Number`] writes a float: the shortest text that reads back as
/// the same Float32 (`0.1`, not the `0.10000000149011612` its widening to f64 would print).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Number32(pub f32);

impl fmt::Display for Number32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            return f.write_str("nan");
        }
        if !v.is_finite() || v == 0.0 || (1e-5..1e16).contains(&v.abs()) {
            write!(f, "{v}")
        } else {
            write!(f, "{v:e}")
        }
    }
}

/// `field` as RFC 4180 writes it: as it is, or in double quotes (inner quotes doubled) when
/// it holds a comma, a quote or a line break, so any text survives a CSV reader unchanged.
pub fn csv_quoted(field: &str) -> Cow<'_, str> {
    if field.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", field.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(field)
    }
}

/// What JSON results write in place of a non-finite number: NaN, +∞, −∞.
pub const NON_FINITE_NAMES: [&str; 3] = ["NaN", "Infinity", "-Infinity"];

/// The JSON name of a non-finite value (one of [`NON_FINITE_NAMES`]); `None` for a number
/// JSON can write.
pub fn non_finite_name(v: f64) -> Option<&'static str> {
    match v {
        v if v.is_nan() => Some(NON_FINITE_NAMES[0]),
        f64::INFINITY => Some(NON_FINITE_NAMES[1]),
        f64::NEG_INFINITY => Some(NON_FINITE_NAMES[2]),
        _ => None,
    }
}

/// The value a non-finite name stands for (the inverse of [`non_finite_name`]).
pub fn from_non_finite_name(name: &str) -> Option<f64> {
    match name {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// A result value as JSON: the number, or for a non-finite value its name as a string
/// (serde_json alone would write `null`, losing which one it was, or drop it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JsonNumber(pub f64);

impl serde::Serialize for JsonNumber {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match non_finite_name(self.0) {
            Some(name) => serializer.serialize_str(name),
            None => serializer.serialize_f64(self.0),
        }
    }
}

/// User text as a CSV cell that a spreadsheet shows as text rather than evaluates.
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    match text.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{text}")),
        _ => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_shortest_round_trip() {
        let cases = [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1e-5, "0.00001"),
            (123456.789, "123456.789"),
            (2.47e-321, "2.47e-321"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (1e16, "1e16"),
            (-1e300, "-1e300"),
            (f64::MAX, "1.7976931348623157e308"),
            (f64::NAN, "nan"),
            (-f64::NAN, "nan"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (v, text) in cases {
            assert_eq!(Number(v).to_string(), text, "{v:?}");
        }
        // Every written form reads back as the same number.
        for v in [
            2.47e-321,
            1.0 / 3.0,
            6.02214076e23,
            -1e-7,
            9_007_199_254_740_993.0,
        ] {
            let text = Number(v).to_string();
            assert_eq!(text.parse::<f64>().unwrap(), v, "{text}");
            assert!(text.len() <= 24, "{text} is not short");
        }
    }

    #[test]
    fn float32_values_are_shortest_for_their_own_type() {
        for (v, text) in [
            (0.1f32, "0.1"),
            (-2.5, "-2.5"),
            (3.4028235e38, "3.4028235e38"),
        ] {
            assert_eq!(Number32(v).to_string(), text);
            assert_eq!(text.parse::<f32>().unwrap(), v);
        }
        assert_eq!(Number32(f32::NAN).to_string(), "nan");
    }

    #[test]
    fn csv_fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(csv_quoted("plain text"), "plain text");
        assert_eq!(csv_quoted("a,b"), "\"a,b\"");
        assert_eq!(csv_quoted("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_quoted("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn non_finite_values_read_back_from_csv_and_json() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let csv: f64 = Number(v).to_string().parse().unwrap();
            assert!(csv == v || (csv.is_nan() && v.is_nan()), "{v}");
            let json = serde_json::to_string(&JsonNumber(v)).unwrap();
            let name: String = serde_json::from_str(&json).unwrap();
            let back = from_non_finite_name(&name).unwrap();
            assert!(back == v || (back.is_nan() && v.is_nan()), "{json}");
        }
        assert_eq!(
            serde_json::to_string(&[JsonNumber(1.5), JsonNumber(f64::NEG_INFINITY)]).unwrap(),
            r#"[1.5,"-Infinity"]"#
        );
        assert_eq!(non_finite_name(-0.0), None);
        assert_eq!(
            from_non_finite_name("nan"),
            None,
            "the JSON names are exact"
        );
    }

    #[test]
    fn formula_cells_are_neutralised_and_others_kept() {
        for formula in ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx"] {
            assert_eq!(csv_cell(formula), format!("'{formula}"));
        }
        for text in ["h", "der(x)", "a=b", "", "'quoted", "x-1"] {
            assert_eq!(csv_cell(text), text);
        }
    }
}
