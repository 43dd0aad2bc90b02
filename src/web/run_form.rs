//! Pieces of the New run form: what a field shows (the model's default as its value, an
//! array's shape), the pasted CSV of input signals turned into the API's `inputs`, and the
//! cost and balance beside Run.

use maud::{Markup, html};

use crate::domain::ids::Credits;
use crate::fmi::describe::{Dimension, Variable};
use crate::sim::plan::Problem;
use crate::sim::protocol::InputSignal;

/// The form field the pasted input signals come in, and the field their problems name.
pub const INPUTS_CSV: &str = "inputs_csv";

/// An array variable's type and shape as people write it: "Float64[3]", "Float64[2×2]",
/// "Float64[n]" (sized by a structural parameter); `None` for a scalar.
pub fn shape(v: &Variable) -> Option<String> {
    if v.shape.is_empty() {
        return None;
    }
    let sizes: Vec<String> = v
        .shape
        .iter()
        .map(|d| match d {
            Dimension::Fixed(n) => n.to_string(),
            Dimension::Parameter(name) => name.clone(),
        })
        .collect();
    Some(format!("{}[{}]", v.r#type, sizes.join("×")))
}

/// Whether `value` is what the model starts with anyway: the form shows each default as the
/// field's value, so a field left alone is sent as it was shown and is not a start value.
pub fn is_default(v: &Variable, value: &str) -> bool {
    v.start.as_deref().map(str::trim) == Some(value.trim())
}

/// The input signals of a pasted CSV (`sim::input_csv`); a problem names the line (counting
/// the header as line 1) and the column.
pub fn inputs_from_csv(text: &str) -> Result<Vec<InputSignal>, Problem> {
    crate::sim::input_csv::parse(text.as_bytes())
        .map_err(|e| Problem::new(INPUTS_CSV, e.to_string()))
}

/// What a run costs and what the user has, beside Run.
pub struct Wallet {
    pub cost: Credits,
    pub balance: Credits,
}

impl Wallet {
    pub fn line(&self) -> Markup {
        html! {
            span #run-cost { "Costs " (self.cost.describe()) }
            " · "
            span #run-balance.muted { "You have " (self.balance.describe()) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_csv_becomes_one_signal_per_column() {
        let signals = inputs_from_csv("time, u, k\n0, 0, 1\n0.5, 1, 1\n\n1, 2, 3\n").unwrap();
        assert_eq!(signals.len(), 2);
        assert_eq!(signals[0].name, "u");
        assert_eq!(signals[0].t, vec![0.0, 0.5, 1.0]);
        assert_eq!(signals[0].u, vec![0.0, 1.0, 2.0]);
        assert_eq!(signals[1].u, vec![1.0, 1.0, 3.0]);
    }

    #[test]
    fn a_bad_csv_names_its_line() {
        let cases = [
            ("u,time\n0,0\n", "line 1: the header must be 'time'"),
            (
                "time,u\n0,0\n1,high\n",
                "line 3: 'high' in column 'u' is not a number",
            ),
            ("time,u\n0,0\n1\n", "line 3: 1 values for 2 columns"),
            ("time,u\n", "line 2: no rows"),
        ];
        for (csv, expected) in cases {
            let problem = inputs_from_csv(csv).unwrap_err();
            assert_eq!(problem.field, INPUTS_CSV);
            assert!(
                problem.message.starts_with(expected),
                "{csv:?}: {}",
                problem.message
            );
        }
    }
}
