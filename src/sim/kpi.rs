//! Key performance indicators of a sweep's case, computed in the worker from the case's
//! recorded points. (Interim version in main; the engine branch brings the full one.)

use serde::{Deserialize, Serialize};

use super::recorded::{Recorded, ValueType, element_columns};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KpiSpec {
    pub variable: String,
    #[serde(flatten)]
    pub kind: KpiKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KpiKind {
    Final,
    Min,
    Max,
    Mean,
    Integral,
    TimeOfMax,
    TimeOfMin,
    FirstCrossing { level: f64 },
}

impl KpiSpec {
    /// The column header: `max(h)`, `first_crossing(h, 0.5)`.
    pub fn name(&self) -> String {
        let v = &self.variable;
        match &self.kind {
            KpiKind::Final => format!("final({v})"),
            KpiKind::Min => format!("min({v})"),
            KpiKind::Max => format!("max({v})"),
            KpiKind::Mean => format!("mean({v})"),
            KpiKind::Integral => format!("integral({v})"),
            KpiKind::TimeOfMax => format!("time_of_max({v})"),
            KpiKind::TimeOfMin => format!("time_of_min({v})"),
            KpiKind::FirstCrossing { level } => format!("first_crossing({v}, {level})"),
        }
    }
}

/// The variable must be a numeric column the run records.
pub fn check(spec: &KpiSpec, recorded: &[Recorded]) -> Result<(), String> {
    let columns = element_columns(recorded);
    let Some((i, _)) = columns.iter().find(|(_, n)| *n == spec.variable) else {
        return Err(format!(
            "'{}' is not recorded: add it to the outputs",
            spec.variable
        ));
    };
    match recorded[*i].r#type {
        ValueType::String | ValueType::Binary => Err(format!(
            "'{}' is not a number: a KPI needs a numeric variable",
            spec.variable
        )),
        _ => Ok(()),
    }
}

/// The KPI of one signal.
pub fn compute(kind: &KpiKind, time: &[f64], values: &[f64]) -> Option<f64> {
    let n = time.len().min(values.len());
    if n == 0 {
        return None;
    }
    let (t, v) = (&time[..n], &values[..n]);
    let integral = || {
        (1..n)
            .map(|i| (t[i] - t[i - 1]) * (v[i] + v[i - 1]) / 2.0)
            .sum::<f64>()
    };
    let extreme = |better: fn(f64, f64) -> bool| {
        let mut best = 0;
        for i in 1..n {
            if better(v[i], v[best]) {
                best = i;
            }
        }
        best
    };
    match kind {
        KpiKind::Final => Some(v[n - 1]),
        KpiKind::Min => Some(v[extreme(|a, b| a < b)]),
        KpiKind::Max => Some(v[extreme(|a, b| a > b)]),
        KpiKind::TimeOfMin => Some(t[extreme(|a, b| a < b)]),
        KpiKind::TimeOfMax => Some(t[extreme(|a, b| a > b)]),
        KpiKind::Integral => Some(integral()),
        KpiKind::Mean if n == 1 || t[n - 1] == t[0] => Some(v[0]),
        KpiKind::Mean => Some(integral() / (t[n - 1] - t[0])),
        KpiKind::FirstCrossing { level } => {
            if v[0] == *level {
                return Some(t[0]);
            }
            (1..n).find_map(|i| {
                let (a, b) = (v[i - 1] - level, v[i] - level);
                (a.signum() != b.signum() || b == 0.0).then(|| {
                    if a == b {
                        t[i]
                    } else {
                        t[i - 1] + (t[i] - t[i - 1]) * a / (a - b)
                    }
                })
            })
        }
    }
}
