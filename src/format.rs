//! How numbers and user text are written for people and spreadsheets.
//!
//! - [`Number`] writes a float in its shortest round-trip form: the fewest digits that read
//!   back as the same `f64`, in plain notation for everyday magnitudes and in exponent notation
//!   otherwise (`2.47e-321`, not a 326-character decimal; `1e300`, not 301 digits).
//! - [`csv_cell`] neutralises user text that a spreadsheet would run as a formula (OWASP "CSV
//!   injection"): a cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
//!   leading `'`. Numbers never pass through it: a negative number is not a formula.

use std::borrow::Cow;
use std::fmt;

/// A float written in its shortest round-trip form (see the module docs). Non-finite values
/// are written as Rust writes them (`NaN`, `inf`, `-inf`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Number(pub f64);

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        let magnitude = v.abs();
        // Rust's `{}` and `{:e}` both print the shortest digits that round-trip; `{}` never
        // switches to an exponent, so it is only short for moderate magnitudes.
        if !v.is_finite() || v == 0.0 || (1e-5..1e16).contains(&magnitude) {
            write!(f, "{v}")
        } else {
            write!(f, "{v:e}")
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
            (f64::NAN, "NaN"),
            (f64::INFINITY, "inf"),
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
    fn formula_cells_are_neutralised_and_others_kept() {
        for formula in ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx"] {
            assert_eq!(csv_cell(formula), format!("'{formula}"));
        }
        for text in ["h", "der(x)", "a=b", "", "'quoted", "x-1"] {
            assert_eq!(csv_cell(text), text);
        }
    }
}
