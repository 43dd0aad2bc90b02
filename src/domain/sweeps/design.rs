//! Designs of experiments: which cases a sweep runs.
//!
//! A design expands to a list of cases, each a set of start values (variable name → literal,
//! as a run takes them). Four kinds, as Modelon Impact and the DOE literature name them:
//!
//! - a full-factorial **grid**: every combination of each parameter's levels, the first
//!   parameter varying slowest (as `itertools::iproduct!` and nested loops order them);
//! - a **Latin hypercube** of `n` samples: each parameter's range cut into `n` strata of
//!   equal probability, one sample in each, the strata paired at random (McKay et al., 1979);
//! - a scrambled **Sobol** sequence of `n` points (Owen-scrambled, Burley 2020, through the
//!   `sobol_burley` crate): low discrepancy, and for `n` a power of two a (0, m, s)-net in
//!   its first dimensions;
//! - explicit **cases**, given as a list or as CSV.
//!
//! Random designs are reproducible: the same seed gives the same cases on every machine and
//! in every release (ChaCha8, whose stream is specified, not `StdRng`, whose is not).
//!
//! Numbers become literals with Rust's shortest round-trip formatting, so the value a case
//! shows is exactly the value the model gets.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::sim::plan::{Problem, Problems};

/// The most dimensions a Sobol design can have (the `sobol_burley` tables).
pub const SOBOL_MAX_DIMENSIONS: usize = sobol_burley::NUM_DIMENSIONS as usize;
/// The most points a Sobol design can have (the crate's index range).
pub const SOBOL_MAX_POINTS: u32 = 1 << 16;

/// A design of experiments, as a request gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum Design {
    Grid(Vec<Axis>),
    LatinHypercube {
        n: u32,
        seed: u64,
        parameters: Vec<(String, Distribution)>,
    },
    Sobol {
        n: u32,
        seed: u32,
        parameters: Vec<(String, Bounds)>,
    },
    /// Each case's start values, as literals.
    Cases(Vec<Vec<(String, String)>>),
}

/// One parameter of a grid and its levels.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub name: String,
    pub levels: Levels,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Levels {
    /// Literals, in order (numbers, Booleans, enumeration items, strings).
    Values(Vec<String>),
    /// `num` evenly spaced numbers from `start` to `stop`, both included (NumPy's
    /// `linspace`); the last is `stop` exactly.
    Range { start: f64, stop: f64, num: u32 },
}

/// How a Latin hypercube samples one parameter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    Uniform { low: f64, high: f64 },
    Normal { mean: f64, sd: f64 },
}

/// The range a Sobol parameter is scaled to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    pub low: f64,
    pub high: f64,
}

/// The cases a design expanded to: each case's start values, in the design's parameter
/// order.
#[derive(Clone, Debug, PartialEq)]
pub struct Cases(pub Vec<Vec<(String, String)>>);

impl Cases {
    /// Every parameter some case sets, in the order they first appear: the columns of a
    /// table of cases.
    pub fn parameters(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for case in &self.0 {
            for (name, _) in case {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
        }
        names
    }
}

impl Design {
    /// The design as stored and shown: seeds included, explicit cases counted (they are the
    /// cases themselves).
    pub fn shown(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Design::Grid(axes) => json!({"grid": axes.iter().map(|a| match &a.levels {
                Levels::Values(v) => json!({"name": a.name, "values": v}),
                Levels::Range { start, stop, num } =>
                    json!({"name": a.name, "range": {"start": start, "stop": stop, "num": num}}),
            }).collect::<Vec<_>>()}),
            Design::LatinHypercube {
                n,
                seed,
                parameters,
            } => json!({"latin_hypercube": {
                "n": n, "seed": seed,
                "parameters": parameters.iter().map(|(name, d)| match d {
                    Distribution::Uniform { low, high } => json!({"name": name, "uniform": {"low": low, "high": high}}),
                    Distribution::Normal { mean, sd } => json!({"name": name, "normal": {"mean": mean, "sd": sd}}),
                }).collect::<Vec<_>>()}}),
            Design::Sobol {
                n,
                seed,
                parameters,
            } => json!({"sobol": {
                "n": n, "seed": seed,
                "parameters": parameters.iter().map(|(name, b)| json!({"name": name, "low": b.low, "high": b.high})).collect::<Vec<_>>()}}),
            Design::Cases(cases) => json!({"cases": cases.len()}),
        }
    }

    /// How many cases the design has, counted without expanding it (a grid of 1000 × 1000 ×
    /// 1000 levels is refused before anything is allocated). `None` when it overflows.
    pub fn count(&self) -> Option<u64> {
        match self {
            Design::Grid(axes) => axes.iter().try_fold(1u64, |n, axis| {
                n.checked_mul(match &axis.levels {
                    Levels::Values(v) => v.len() as u64,
                    Levels::Range { num, .. } => u64::from(*num),
                })
            }),
            Design::LatinHypercube { n, .. } | Design::Sobol { n, .. } => Some(u64::from(*n)),
            Design::Cases(cases) => Some(cases.len() as u64),
        }
    }

    /// The parameters the design varies, in order.
    pub fn parameter_names(&self) -> Vec<&str> {
        match self {
            Design::Grid(axes) => axes.iter().map(|a| a.name.as_str()).collect(),
            Design::LatinHypercube { parameters, .. } => {
                parameters.iter().map(|(n, _)| n.as_str()).collect()
            }
            Design::Sobol { parameters, .. } => {
                parameters.iter().map(|(n, _)| n.as_str()).collect()
            }
            Design::Cases(cases) => {
                let mut names: Vec<&str> = Vec::new();
                for (name, _) in cases.iter().flatten() {
                    if !names.contains(&name.as_str()) {
                        names.push(name);
                    }
                }
                names
            }
        }
    }

    /// Checks the design's own rules (not the model's: the sweep checks each case against
    /// the model) and that it has between 1 and `max_cases` cases; then expands it.
    pub fn expand(&self, max_cases: u64) -> Result<Cases, Problems> {
        let problems = self.problems(max_cases);
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        Ok(Cases(match self {
            Design::Grid(axes) => grid(axes),
            Design::LatinHypercube {
                n,
                seed,
                parameters,
            } => latin_hypercube(*n, *seed, parameters),
            Design::Sobol {
                n,
                seed,
                parameters,
            } => sobol(*n, *seed, parameters),
            Design::Cases(cases) => cases.clone(),
        }))
    }

    fn problems(&self, max_cases: u64) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |field: String, message: String| {
            problems.push(Problem::new(field, message));
        };
        let (kind, names) = (self.field(), self.parameter_names());
        for (i, name) in names.iter().enumerate() {
            if name.trim().is_empty() {
                problem(format!("{kind}[{i}]"), "a parameter needs a name".into());
            } else if names[..i].contains(name) {
                problem(format!("{kind}.{name}"), format!("'{name}' is given twice"));
            }
        }
        match self {
            Design::Grid(axes) => {
                if axes.is_empty() {
                    problem(kind.into(), "a grid needs at least one parameter".into());
                }
                for axis in axes {
                    let field = format!("{kind}.{}", axis.name);
                    match &axis.levels {
                        Levels::Values(values) if values.is_empty() => {
                            problem(field, "give at least one value".into());
                        }
                        Levels::Values(_) => {}
                        Levels::Range { start, stop, num } => {
                            if !start.is_finite() || !stop.is_finite() {
                                problem(field, "a range's start and stop must be finite".into());
                            } else if *num == 0 {
                                problem(field, "a range needs num ≥ 1".into());
                            }
                        }
                    }
                }
            }
            Design::LatinHypercube { n, parameters, .. } => {
                if parameters.is_empty() {
                    problem(
                        kind.into(),
                        "a Latin hypercube needs at least one parameter".into(),
                    );
                }
                if *n == 0 {
                    problem(format!("{kind}.n"), "n must be at least 1".into());
                }
                for (name, distribution) in parameters {
                    let field = format!("{kind}.{name}");
                    match *distribution {
                        Distribution::Uniform { low, high } => {
                            if !(low.is_finite() && high.is_finite() && low < high) {
                                problem(field, "uniform needs finite low < high".into());
                            }
                        }
                        Distribution::Normal { mean, sd } => {
                            if !(mean.is_finite() && sd.is_finite() && sd > 0.0) {
                                problem(field, "normal needs a finite mean and sd > 0".into());
                            }
                        }
                    }
                }
            }
            Design::Sobol { n, parameters, .. } => {
                if parameters.is_empty() {
                    problem(
                        kind.into(),
                        "a Sobol design needs at least one parameter".into(),
                    );
                }
                if parameters.len() > SOBOL_MAX_DIMENSIONS {
                    problem(
                        kind.into(),
                        format!(
                            "a Sobol design has at most {SOBOL_MAX_DIMENSIONS} parameters, not {}",
                            parameters.len()
                        ),
                    );
                }
                if *n == 0 || *n > SOBOL_MAX_POINTS {
                    problem(
                        format!("{kind}.n"),
                        format!("n must be between 1 and {SOBOL_MAX_POINTS}"),
                    );
                }
                for (name, b) in parameters {
                    if !(b.low.is_finite() && b.high.is_finite() && b.low < b.high) {
                        problem(format!("{kind}.{name}"), "needs finite low < high".into());
                    }
                }
            }
            Design::Cases(cases) => {
                for (i, case) in cases.iter().enumerate() {
                    for (j, (name, _)) in case.iter().enumerate() {
                        if case[..j].iter().any(|(n, _)| n == name) {
                            problem(
                                format!("{kind}[{i}].{name}"),
                                format!("'{name}' is given twice"),
                            );
                        }
                    }
                }
            }
        }
        match self.count() {
            Some(n) if (1..=max_cases).contains(&n) => {}
            Some(0) => problem(kind.into(), "the design has no cases".into()),
            Some(n) => problem(
                kind.into(),
                format!("the design has {n} cases; a sweep may have at most {max_cases}"),
            ),
            None => problem(
                kind.into(),
                format!(
                    "the design has more cases than can be counted; a sweep may have at most {max_cases}"
                ),
            ),
        }
        problems
    }

    /// The request field problems are reported under.
    fn field(&self) -> &'static str {
        match self {
            Design::Grid(_) => "design.grid",
            Design::LatinHypercube { .. } => "design.latin_hypercube",
            Design::Sobol { .. } => "design.sobol",
            Design::Cases(_) => "design.cases",
        }
    }
}

/// A number as a start value literal: the shortest text that reads back as the same `f64`.
pub fn number_literal(v: f64) -> String {
    // `{}` on f64 is Rust's shortest round-trip form, without an exponent.
    format!("{v}")
}

/// `num` points from `start` to `stop`, both included; the last is `stop` exactly (computed
/// as `start + i·step` it could miss it by an ulp).
pub fn linspace(start: f64, stop: f64, num: u32) -> Vec<f64> {
    match num {
        0 => vec![],
        1 => vec![start],
        _ => {
            let step = (stop - start) / f64::from(num - 1);
            (0..num)
                .map(|i| {
                    if i == num - 1 {
                        stop
                    } else {
                        start + f64::from(i) * step
                    }
                })
                .collect()
        }
    }
}

fn grid(axes: &[Axis]) -> Vec<Vec<(String, String)>> {
    let levels: Vec<Vec<String>> = axes
        .iter()
        .map(|axis| match &axis.levels {
            Levels::Values(v) => v.clone(),
            Levels::Range { start, stop, num } => linspace(*start, *stop, *num)
                .into_iter()
                .map(number_literal)
                .collect(),
        })
        .collect();
    let total: usize = levels.iter().map(Vec::len).product();
    let mut cases = Vec::with_capacity(total);
    // Mixed-radix counting, the last parameter fastest.
    let mut digits = vec![0usize; axes.len()];
    for _ in 0..total {
        cases.push(
            axes.iter()
                .zip(&digits)
                .zip(&levels)
                .map(|((axis, &d), levels)| (axis.name.clone(), levels[d].clone()))
                .collect(),
        );
        for k in (0..digits.len()).rev() {
            digits[k] += 1;
            if digits[k] < levels[k].len() {
                break;
            }
            digits[k] = 0;
        }
    }
    cases
}

/// The unit-interval samples of a Latin hypercube: `n` rows × `dims` columns, each column a
/// random permutation of the strata `[k/n, (k+1)/n)` with one uniform point in each.
pub fn latin_hypercube_unit(n: u32, dims: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_usize = n as usize;
    let mut rows = vec![vec![0.0; dims]; n_usize];
    for d in 0..dims {
        // Fisher–Yates, drawn from our own stream (not `SliceRandom`, whose algorithm may
        // change between `rand` releases).
        let mut strata: Vec<u32> = (0..n).collect();
        for i in (1..n_usize).rev() {
            let j = rng.gen_range(0..=i);
            strata.swap(i, j);
        }
        for (row, &stratum) in rows.iter_mut().zip(&strata) {
            let u: f64 = rng.r#gen::<f64>();
            row[d] = (f64::from(stratum) + u) / f64::from(n);
        }
    }
    rows
}

fn latin_hypercube(
    n: u32,
    seed: u64,
    parameters: &[(String, Distribution)],
) -> Vec<Vec<(String, String)>> {
    latin_hypercube_unit(n, parameters.len(), seed)
        .into_iter()
        .map(|row| {
            parameters
                .iter()
                .zip(row)
                .map(|((name, distribution), u)| {
                    (name.clone(), number_literal(distribution.quantile(u)))
                })
                .collect()
        })
        .collect()
}

impl Distribution {
    /// The value at probability `u` in (0, 1).
    pub fn quantile(self, u: f64) -> f64 {
        match self {
            Distribution::Uniform { low, high } => low + u * (high - low),
            // u is never 0 (a stratum's point is strictly inside it but for a draw of exactly
            // 0.0, whose probability is 2^-53 per sample); clamp so that case stays finite.
            Distribution::Normal { mean, sd } => {
                let u = u.clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON / 2.0);
                mean + sd * standard_normal_quantile(u)
            }
        }
    }
}

/// The quantile function of the standard normal distribution, by Acklam's rational
/// approximation (relative error below 1.15·10⁻⁹ over (0, 1)): far finer than any
/// uncertainty a sampled parameter stands for.
pub fn standard_normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.02425;
    if p < LOW {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

/// The first `n` points of the Owen-scrambled Sobol sequence in `dims` dimensions, in [0, 1).
pub fn sobol_unit(n: u32, dims: usize, seed: u32) -> Vec<Vec<f64>> {
    (0..n)
        .map(|i| {
            (0..dims as u32)
                .map(|d| f64::from(sobol_burley::sample(i, d, seed)))
                .collect()
        })
        .collect()
}

fn sobol(n: u32, seed: u32, parameters: &[(String, Bounds)]) -> Vec<Vec<(String, String)>> {
    sobol_unit(n, parameters.len(), seed)
        .into_iter()
        .map(|row| {
            parameters
                .iter()
                .zip(row)
                .map(|((name, b), u)| (name.clone(), number_literal(b.low + u * (b.high - b.low))))
                .collect()
        })
        .collect()
}

/// Reads explicit cases from CSV: a header of parameter names, then one case per row; an
/// empty cell leaves that parameter at the sweep's base value. A problem names its line.
pub fn cases_from_csv(text: &str, max_cases: u64) -> Result<Vec<Vec<(String, String)>>, Problems> {
    let field = "design.csv";
    let fail = |message: String| Problems(vec![Problem::new(field, message)]);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| fail(format!("the header cannot be read: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    if names.is_empty() || names.iter().all(String::is_empty) {
        return Err(fail("the first line must name the parameters".into()));
    }
    if let Some(i) = names.iter().position(String::is_empty) {
        return Err(fail(format!("column {} of the header has no name", i + 1)));
    }
    let mut cases = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            fail(format!("line {line}: {e}"))
        })?;
        if cases.len() as u64 >= max_cases {
            return Err(fail(format!("a sweep may have at most {max_cases} cases")));
        }
        if record.len() != names.len() {
            let line = record.position().map_or(0, |p| p.line());
            return Err(fail(format!(
                "line {line} has {} cells; the header names {}",
                record.len(),
                names.len()
            )));
        }
        cases.push(
            names
                .iter()
                .zip(record.iter())
                .filter(|(_, cell)| !cell.is_empty())
                .map(|(name, cell)| (name.clone(), cell.to_string()))
                .collect(),
        );
    }
    if cases.is_empty() {
        return Err(fail("there are no cases below the header".into()));
    }
    Ok(cases)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: &[&str]) -> Levels {
        Levels::Values(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn a_grid_is_every_combination_with_the_last_parameter_fastest() {
        let design = Design::Grid(vec![
            Axis {
                name: "k".into(),
                levels: values(&["1", "2"]),
            },
            Axis {
                name: "on".into(),
                levels: values(&["true", "false"]),
            },
            Axis {
                name: "x".into(),
                levels: Levels::Range {
                    start: 0.0,
                    stop: 1.0,
                    num: 3,
                },
            },
        ]);
        assert_eq!(design.count(), Some(12));
        let cases = design.expand(100).unwrap().0;
        let text: Vec<String> = cases
            .iter()
            .map(|c| {
                c.iter()
                    .map(|(_, v)| v.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        assert_eq!(
            text,
            [
                "1,true,0",
                "1,true,0.5",
                "1,true,1",
                "1,false,0",
                "1,false,0.5",
                "1,false,1",
                "2,true,0",
                "2,true,0.5",
                "2,true,1",
                "2,false,0",
                "2,false,0.5",
                "2,false,1",
            ]
        );
        assert!(cases.iter().all(|c| c[0].0 == "k" && c[2].0 == "x"));
    }

    #[test]
    fn a_range_ends_exactly_at_its_stop_and_reads_back_exactly() {
        let points = linspace(0.1, 0.7, 7);
        assert_eq!(points.len(), 7);
        assert_eq!(points[6], 0.7);
        assert_eq!(linspace(3.0, 9.0, 1), vec![3.0]);
        for p in points {
            assert_eq!(number_literal(p).parse::<f64>().unwrap(), p);
        }
        assert_eq!(number_literal(3.0), "3");
        assert_eq!(number_literal(1e-7).parse::<f64>().unwrap(), 1e-7);
    }

    #[test]
    fn too_many_cases_are_refused_before_anything_is_expanded() {
        let big = |name: &str| Axis {
            name: name.into(),
            levels: Levels::Range {
                start: 0.0,
                stop: 1.0,
                num: u32::MAX,
            },
        };
        let design = Design::Grid(vec![big("a"), big("b"), big("c")]);
        assert_eq!(design.count(), None);
        let problems = design.expand(10_000).unwrap_err().0;
        assert!(
            problems[0].message.contains("at most 10000"),
            "{problems:?}"
        );
        let design = Design::Grid(vec![Axis {
            name: "a".into(),
            levels: Levels::Range {
                start: 0.0,
                stop: 1.0,
                num: 10_001,
            },
        }]);
        let problems = design.expand(10_000).unwrap_err().0;
        assert_eq!(
            problems[0].message,
            "the design has 10001 cases; a sweep may have at most 10000"
        );
    }

    #[test]
    fn a_parameter_given_twice_or_without_levels_is_named() {
        let design = Design::Grid(vec![
            Axis {
                name: "k".into(),
                levels: values(&["1"]),
            },
            Axis {
                name: "k".into(),
                levels: values(&[]),
            },
        ]);
        let problems = design.expand(100).unwrap_err().0;
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"design.grid.k"), "{problems:?}");
        assert!(problems.iter().any(|p| p.message == "'k' is given twice"));
        assert!(
            problems
                .iter()
                .any(|p| p.message == "give at least one value")
        );
    }

    /// McKay's property: in every dimension, each of the n strata holds exactly one sample.
    #[test]
    fn a_latin_hypercube_has_one_sample_per_stratum_in_every_dimension() {
        for (n, dims, seed) in [(1, 1, 0), (7, 3, 1), (100, 5, 42), (1000, 2, 7)] {
            let rows = latin_hypercube_unit(n, dims, seed);
            assert_eq!(rows.len(), n as usize);
            for d in 0..dims {
                let mut seen = vec![false; n as usize];
                for row in &rows {
                    let u = row[d];
                    assert!((0.0..1.0).contains(&u));
                    let stratum = (u * f64::from(n)).floor() as usize;
                    assert!(!seen[stratum], "stratum {stratum} twice (n {n}, dim {d})");
                    seen[stratum] = true;
                }
            }
        }
    }

    #[test]
    fn a_seed_reproduces_its_design_and_another_seed_does_not() {
        let parameters = vec![
            (
                "a".to_string(),
                Distribution::Uniform {
                    low: 1.0,
                    high: 2.0,
                },
            ),
            (
                "b".to_string(),
                Distribution::Normal {
                    mean: 9.81,
                    sd: 0.1,
                },
            ),
        ];
        let design = |seed| Design::LatinHypercube {
            n: 50,
            seed,
            parameters: parameters.clone(),
        };
        assert_eq!(design(3).expand(100), design(3).expand(100));
        assert_ne!(design(3).expand(100), design(4).expand(100));
        // The stream is ChaCha8's, which is specified: these are the values on every machine.
        let first = &design(3).expand(100).unwrap().0[0];
        let again = &design(3).expand(100).unwrap().0[0];
        assert_eq!(first, again);
        let sobol = |seed| Design::Sobol {
            n: 16,
            seed,
            parameters: vec![(
                "a".to_string(),
                Bounds {
                    low: 0.0,
                    high: 1.0,
                },
            )],
        };
        assert_eq!(sobol(1).expand(100), sobol(1).expand(100));
        assert_ne!(sobol(1).expand(100), sobol(2).expand(100));
    }

    #[test]
    fn latin_hypercube_values_follow_their_distributions() {
        let rows = latin_hypercube(
            2000,
            5,
            &[
                (
                    "u".into(),
                    Distribution::Uniform {
                        low: 2.0,
                        high: 4.0,
                    },
                ),
                (
                    "g".into(),
                    Distribution::Normal {
                        mean: 10.0,
                        sd: 2.0,
                    },
                ),
            ],
        );
        let column = |j: usize| -> Vec<f64> {
            rows.iter()
                .map(|r| r[j].1.parse::<f64>().unwrap())
                .collect()
        };
        let (u, g) = (column(0), column(1));
        assert!(u.iter().all(|v| (2.0..4.0).contains(v)));
        let mean = g.iter().sum::<f64>() / g.len() as f64;
        let var = g.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (g.len() - 1) as f64;
        // Stratified: far tighter than plain sampling's ±3σ/√n.
        assert!((mean - 10.0).abs() < 0.01, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.02, "sd {}", var.sqrt());
    }

    #[test]
    fn the_normal_quantile_matches_known_values() {
        for (p, z) in [
            (0.5, 0.0),
            (0.975, 1.959_963_984_540_054),
            (0.025, -1.959_963_984_540_054),
            (0.841_344_746_068_542_9, 1.0),
            (1e-10, -6.361_340_902_404_056),
            (0.999, 3.090_232_306_167_813_5),
        ] {
            let got = standard_normal_quantile(p);
            assert!(
                (got - z).abs() < 2e-9 * z.abs().max(1.0),
                "p {p}: {got} vs {z}"
            );
        }
    }

    /// For n = 2^m, each one-dimensional projection of the scrambled Sobol points is a
    /// (0, m, 1)-net: one point in each interval [k/n, (k+1)/n). In the first two dimensions
    /// the points form a (0, m, 2)-net: one point in every elementary box 2^-a × 2^-b with
    /// a + b = m.
    #[test]
    fn sobol_points_are_stratified_as_a_net() {
        for (m, seed) in [(4u32, 0u32), (7, 1), (10, 12345)] {
            let n = 1u32 << m;
            let points = sobol_unit(n, 6, seed);
            for d in 0..6 {
                let mut seen = vec![false; n as usize];
                for p in &points {
                    let k = (p[d] * f64::from(n)) as usize;
                    assert!(!seen[k], "m {m} dim {d}: interval {k} twice");
                    seen[k] = true;
                }
            }
            for a in 0..=m {
                let b = m - a;
                let mut seen = vec![false; n as usize];
                for p in &points {
                    let i = (p[0] * f64::from(1u32 << a)) as usize;
                    let j = (p[1] * f64::from(1u32 << b)) as usize;
                    let cell = (i << b) | j;
                    assert!(!seen[cell], "m {m}: box ({a},{b}) cell {cell} twice");
                    seen[cell] = true;
                }
            }
        }
    }

    #[test]
    fn sobol_refuses_more_points_or_dimensions_than_its_tables_hold() {
        let design = Design::Sobol {
            n: SOBOL_MAX_POINTS + 1,
            seed: 0,
            parameters: vec![(
                "a".into(),
                Bounds {
                    low: 0.0,
                    high: 1.0,
                },
            )],
        };
        assert!(design.expand(1 << 20).is_err());
    }

    #[test]
    fn csv_cases_read_by_name_with_empty_cells_left_to_the_base() {
        let cases = cases_from_csv("e, h0\n0.5,1\n0.7,\n", 10).unwrap();
        assert_eq!(
            cases,
            vec![
                vec![("e".into(), "0.5".into()), ("h0".into(), "1".into())],
                vec![("e".into(), "0.7".into())],
            ]
        );
        let problems = cases_from_csv("e,h0\n0.5,1\n0.7\n", 10).unwrap_err().0;
        assert!(problems[0].message.starts_with("line 3"), "{problems:?}");
        assert!(cases_from_csv("e\n", 10).is_err());
        assert!(cases_from_csv("e\n1\n2\n3\n", 2).is_err());
    }
}
