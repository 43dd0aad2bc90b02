//! Key performance indicators: one number per case of a sweep, computed from a recorded signal.
//!
//! A KPI is computed on the recorded output points of the case, after the same event
//! filtering as a run's result (so it is what `compute` gives on the columns a single run of
//! that case stores), with the values in their display unit when the variable is recorded in
//! one. Integers and Booleans are taken as numbers (Booleans 0 and 1; integers exactly up to
//! 2^53).
//!
//! NaN: a NaN anywhere in the signal makes every KPI of it NaN (the signal is undefined
//! there, so no statistic of it is), except `final`, which is the last value as recorded.
//! `None` means the KPI does not exist: no points at all, or a level never crossed.

use serde::{Deserialize, Serialize};

use super::protocol::SimOutput;
use super::recorded::{Recorded, element_columns};
use crate::format::Number;

/// A KPI of one recorded column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KpiSpec {
    /// A recorded column: a scalar output, or an element of an array output ("y[2]").
    pub variable: String,
    #[serde(flatten)]
    pub kind: KpiKind,
}

/// What a KPI computes from the time points `t` and the values `v` of its column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KpiKind {
    /// The last value.
    Final,
    Min,
    Max,
    /// The time-weighted mean: the trapezoid integral over the span of the points; when the
    /// points span no time (one point, or all at one instant) the mean of the values.
    Mean,
    /// The trapezoid integral over the recorded points (0 for one point).
    Integral,
    /// The first time the maximum is reached.
    TimeOfMax,
    /// The first time the minimum is reached.
    TimeOfMin,
    /// The first time the signal reaches `level` from either side, linearly interpolated
    /// between the two points around it; the start time if it starts exactly at `level`.
    FirstCrossing {
        level: f64,
    },
}

impl KpiKind {
    /// The name as a column header writes it.
    fn label(&self) -> &'static str {
        match self {
            KpiKind::Final => "final",
            KpiKind::Min => "min",
            KpiKind::Max => "max",
            KpiKind::Mean => "mean",
            KpiKind::Integral => "integral",
            KpiKind::TimeOfMax => "time_of_max",
            KpiKind::TimeOfMin => "time_of_min",
            KpiKind::FirstCrossing { .. } => "first_crossing",
        }
    }
}

impl KpiSpec {
    /// The column header: `max(h)`, `first_crossing(h, 0.5)`.
    pub fn name(&self) -> String {
        match self.kind {
            KpiKind::FirstCrossing { level } => {
                format!("first_crossing({}, {})", self.variable, Number(level))
            }
            ref kind => format!("{}({})", kind.label(), self.variable),
        }
    }
}

/// The KPI of the signal `values` at the times `time` (same length, times non-decreasing).
pub fn compute(kind: &KpiKind, time: &[f64], values: &[f64]) -> Option<f64> {
    let n = time.len().min(values.len());
    let (time, values) = (&time[..n], &values[..n]);
    let last = *values.last()?;
    if matches!(kind, KpiKind::Final) {
        return Some(last);
    }
    if values.iter().any(|v| v.is_nan()) {
        return Some(f64::NAN);
    }
    match *kind {
        KpiKind::Final => Some(last),
        KpiKind::Min => values.iter().copied().reduce(f64::min),
        KpiKind::Max => values.iter().copied().reduce(f64::max),
        KpiKind::Integral => Some(integral(time, values)),
        KpiKind::Mean => Some(mean(time, values)),
        KpiKind::TimeOfMax => first_time_of(time, values, f64::max),
        KpiKind::TimeOfMin => first_time_of(time, values, f64::min),
        KpiKind::FirstCrossing { level } => first_crossing(time, values, level),
    }
}

/// The trapezoid integral.
fn integral(time: &[f64], values: &[f64]) -> f64 {
    time.windows(2)
        .zip(values.windows(2))
        .map(|(t, v)| 0.5 * (t[1] - t[0]) * (v[0] + v[1]))
        .sum()
}

fn mean(time: &[f64], values: &[f64]) -> f64 {
    let span = time[time.len() - 1] - time[0];
    if span > 0.0 {
        integral(time, values) / span
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// The first time the extreme that `pick` chooses is reached.
fn first_time_of(time: &[f64], values: &[f64], pick: fn(f64, f64) -> f64) -> Option<f64> {
    let extreme = values.iter().copied().reduce(pick)?;
    values.iter().position(|&v| v == extreme).map(|i| time[i])
}

fn first_crossing(time: &[f64], values: &[f64], level: f64) -> Option<f64> {
    if values[0] == level {
        return Some(time[0]);
    }
    for i in 1..values.len() {
        let (a, b) = (values[i - 1] - level, values[i] - level);
        if b == 0.0 {
            return Some(time[i]);
        }
        if (a < 0.0) != (b < 0.0) {
            let fraction = (level - values[i - 1]) / (values[i] - values[i - 1]);
            return Some(time[i - 1] + fraction * (time[i] - time[i - 1]));
        }
    }
    None
}

/// The KPIs of one case's result, in the order of `specs` (each checked by [`check`] against
/// the job's outputs; a column the result lacks gives `None`).
pub fn of_output(specs: &[KpiSpec], output: &SimOutput) -> Vec<Option<f64>> {
    specs
        .iter()
        .map(|spec| {
            let column = output.columns.iter().find(|c| c.name == spec.variable)?;
            match column.values.as_floats() {
                Some(values) => compute(&spec.kind, &output.time, values),
                None => compute(&spec.kind, &output.time, &column.values.numbers()?),
            }
        })
        .collect()
}

/// Checks a spec against what the run records: the variable must be one of `recorded`'s
/// scalar (or element, "y[2]") numeric columns (Float/Int/Bool, not String/Binary/Clock).
pub fn check(spec: &KpiSpec, recorded: &[Recorded]) -> Result<(), String> {
    if let KpiKind::FirstCrossing { level } = spec.kind
        && !level.is_finite()
    {
        return Err(format!(
            "{}: the level must be a finite number",
            spec.name()
        ));
    }
    let (variable, _) = element_columns(recorded)
        .into_iter()
        .find(|(_, name)| *name == spec.variable)
        .ok_or_else(|| {
            format!(
                "{}: '{}' is not a recorded output (or element of one)",
                spec.name(),
                spec.variable
            )
        })?;
    if !recorded[variable].r#type.is_numeric() {
        return Err(format!(
            "{}: '{}' is not a number or Boolean",
            spec.name(),
            spec.variable
        ));
    }
    Ok(())
}

/// The KPI values as the worker protocol carries them: a number, `null` for a KPI that does
/// not exist, or `"NaN"`, `"inf"`, `"-inf"` (JSON has no such numbers; serde_json would
/// write them as `null`, which would alter them).
pub mod wire {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Value {
        Number(f64),
        Special(String),
    }

    pub fn serialize<S: Serializer>(kpis: &[Option<f64>], s: S) -> Result<S::Ok, S::Error> {
        let values: Vec<Option<Value>> = kpis
            .iter()
            .map(|k| {
                k.map(|x| match x {
                    x if x.is_nan() => Value::Special("NaN".into()),
                    f64::INFINITY => Value::Special("inf".into()),
                    f64::NEG_INFINITY => Value::Special("-inf".into()),
                    x => Value::Number(x),
                })
            })
            .collect();
        values.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Option<f64>>, D::Error> {
        let values = Vec::<Option<Value>>::deserialize(d)?;
        values
            .into_iter()
            .map(|v| match v {
                None => Ok(None),
                Some(Value::Number(x)) => Ok(Some(x)),
                Some(Value::Special(s)) => match s.as_str() {
                    "NaN" => Ok(Some(f64::NAN)),
                    "inf" => Ok(Some(f64::INFINITY)),
                    "-inf" => Ok(Some(f64::NEG_INFINITY)),
                    _ => Err(serde::de::Error::custom(format!("not a KPI value: {s:?}"))),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::recorded::ValueType;

    fn all_kinds() -> Vec<KpiKind> {
        vec![
            KpiKind::Final,
            KpiKind::Min,
            KpiKind::Max,
            KpiKind::Mean,
            KpiKind::Integral,
            KpiKind::TimeOfMax,
            KpiKind::TimeOfMin,
            KpiKind::FirstCrossing { level: 0.5 },
        ]
    }

    /// x(t) = 1 - t on [0, 1], sampled at 11 points: every KPI has a closed form.
    #[test]
    fn a_falling_line_has_its_closed_forms() {
        let t: Vec<f64> = (0..=10).map(|i| f64::from(i) / 10.0).collect();
        let x: Vec<f64> = t.iter().map(|t| 1.0 - t).collect();
        let close = |k: KpiKind, want: f64| {
            let got = compute(&k, &t, &x).unwrap();
            assert!((got - want).abs() < 1e-12, "{k:?}: {got} ≠ {want}");
        };
        close(KpiKind::Final, 0.0);
        close(KpiKind::Min, 0.0);
        close(KpiKind::Max, 1.0);
        // The trapezoid rule is exact on a line.
        close(KpiKind::Integral, 0.5);
        close(KpiKind::Mean, 0.5);
        close(KpiKind::TimeOfMax, 0.0);
        close(KpiKind::TimeOfMin, 1.0);
        close(KpiKind::FirstCrossing { level: 0.25 }, 0.75);
        // Between two points: linear interpolation (0.95 → 0.05 of the way into [0, 0.1]).
        close(KpiKind::FirstCrossing { level: 0.995 }, 0.005);
        // From below as from above.
        let up: Vec<f64> = t.to_vec();
        assert_eq!(
            compute(&KpiKind::FirstCrossing { level: 0.3 }, &t, &up),
            Some(0.3)
        );
        assert_eq!(
            compute(&KpiKind::FirstCrossing { level: 2.0 }, &t, &x),
            None
        );
    }

    /// A parabola: the trapezoid rule's error has a closed form (h²/12 · (f'(1) - f'(0))),
    /// the mean weighs by time, not by point.
    #[test]
    fn the_integral_is_the_trapezoid_rule_and_the_mean_is_weighted_by_time() {
        let h = 0.25;
        let t: Vec<f64> = (0..=4).map(|i| f64::from(i) * h).collect();
        let y: Vec<f64> = t.iter().map(|t| t * t).collect();
        let exact = 1.0 / 3.0 + h * h / 12.0 * 2.0;
        let got = compute(&KpiKind::Integral, &t, &y).unwrap();
        assert!((got - exact).abs() < 1e-15, "{got} {exact}");
        // Uneven points: 0 for 9 s, then 10 for 1 s (from t = 9 to 10, the jump at 9).
        let t = [0.0, 9.0, 9.0, 10.0];
        let v = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(compute(&KpiKind::Mean, &t, &v), Some(1.0));
        assert_eq!(compute(&KpiKind::Integral, &t, &v), Some(10.0));
        // The jump at 9 reaches the level 5 at 9.
        assert_eq!(
            compute(&KpiKind::FirstCrossing { level: 5.0 }, &t, &v),
            Some(9.0)
        );
    }

    #[test]
    fn one_point_and_no_points() {
        for kind in all_kinds() {
            assert_eq!(compute(&kind, &[], &[]), None, "{kind:?}");
        }
        let one = |k: KpiKind| compute(&k, &[2.0], &[0.5]);
        assert_eq!(one(KpiKind::Final), Some(0.5));
        assert_eq!(one(KpiKind::Mean), Some(0.5));
        assert_eq!(one(KpiKind::Integral), Some(0.0));
        assert_eq!(one(KpiKind::TimeOfMax), Some(2.0));
        // Starting exactly at the level is a crossing at the start.
        assert_eq!(one(KpiKind::FirstCrossing { level: 0.5 }), Some(2.0));
        assert_eq!(one(KpiKind::FirstCrossing { level: 0.6 }), None);
    }

    #[test]
    fn the_first_of_equal_extremes_counts() {
        let t = [0.0, 1.0, 2.0, 3.0];
        let v = [1.0, 3.0, 0.0, 3.0];
        assert_eq!(compute(&KpiKind::TimeOfMax, &t, &v), Some(1.0));
        let v = [1.0, 0.0, 3.0, 0.0];
        assert_eq!(compute(&KpiKind::TimeOfMin, &t, &v), Some(1.0));
    }

    #[test]
    fn a_nan_makes_every_kpi_but_final_nan() {
        let t = [0.0, 1.0, 2.0];
        let v = [0.0, f64::NAN, 1.0];
        for kind in all_kinds() {
            let got = compute(&kind, &t, &v).unwrap();
            if kind == KpiKind::Final {
                assert_eq!(got, 1.0);
            } else {
                assert!(got.is_nan(), "{kind:?}: {got}");
            }
        }
        // Infinities are values like others.
        let v = [0.0, f64::INFINITY, 1.0];
        assert_eq!(compute(&KpiKind::Max, &t, &v), Some(f64::INFINITY));
        assert_eq!(compute(&KpiKind::TimeOfMax, &t, &v), Some(1.0));
    }

    #[test]
    fn names_are_column_headers() {
        let spec = |variable: &str, kind| KpiSpec {
            variable: variable.into(),
            kind,
        };
        assert_eq!(spec("h", KpiKind::Max).name(), "max(h)");
        assert_eq!(spec("y[2]", KpiKind::TimeOfMin).name(), "time_of_min(y[2])");
        assert_eq!(
            spec("h", KpiKind::FirstCrossing { level: 0.5 }).name(),
            "first_crossing(h, 0.5)"
        );
        // The serde shape the lead's API and the worker protocol share.
        let json = serde_json::to_value(spec("h", KpiKind::FirstCrossing { level: 0.5 })).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"variable": "h", "kind": "first_crossing", "level": 0.5})
        );
        let back: KpiSpec =
            serde_json::from_value(serde_json::json!({"variable": "v", "kind": "time_of_max"}))
                .unwrap();
        assert_eq!(back, spec("v", KpiKind::TimeOfMax));
    }

    #[test]
    fn only_recorded_numeric_columns_can_have_kpis() {
        let mut array = Recorded::scalar("y", ValueType::Float64);
        array.shape = vec![3];
        let recorded = [
            Recorded::scalar("h", ValueType::Float64),
            Recorded::scalar("n", ValueType::Int32),
            Recorded::scalar("b", ValueType::Boolean),
            Recorded::scalar("s", ValueType::String),
            array,
        ];
        let spec = |variable: &str| KpiSpec {
            variable: variable.into(),
            kind: KpiKind::Max,
        };
        for ok in ["h", "n", "b", "y[2]"] {
            assert_eq!(check(&spec(ok), &recorded), Ok(()), "{ok}");
        }
        let err = check(&spec("s"), &recorded).unwrap_err();
        assert!(err.contains("not a number"), "{err}");
        for missing in ["x", "y", "y[4]"] {
            let err = check(&spec(missing), &recorded).unwrap_err();
            assert!(err.contains("not a recorded output"), "{missing}: {err}");
        }
        let nan_level = KpiSpec {
            variable: "h".into(),
            kind: KpiKind::FirstCrossing { level: f64::NAN },
        };
        assert!(check(&nan_level, &recorded).is_err());
    }

    #[test]
    fn kpi_values_cross_the_wire_unaltered() {
        #[derive(Serialize, Deserialize)]
        struct W(#[serde(with = "wire")] Vec<Option<f64>>);
        let values = vec![
            Some(0.1 + 0.2),
            None,
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            Some(-0.0),
            Some(f64::MIN_POSITIVE),
        ];
        let json = serde_json::to_string(&W(values.clone())).unwrap();
        let back: W = serde_json::from_str(&json).unwrap();
        assert_eq!(back.0.len(), values.len());
        for (a, b) in back.0.iter().zip(&values) {
            assert_eq!(a.map(f64::to_bits), b.map(f64::to_bits), "{json}");
        }
        let nan: W =
            serde_json::from_str(&serde_json::to_string(&W(vec![Some(f64::NAN)])).unwrap())
                .unwrap();
        assert!(nan.0[0].unwrap().is_nan());
        assert!(serde_json::from_str::<W>("[\"nan?\"]").is_err());
    }
}
