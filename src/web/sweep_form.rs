//! The New sweep form as people type it, turned into the domain's [`SweepRequest`]: start
//! values as `name = value` lines, a design (grid lines `e = 0.5, 0.7, 0.9` or
//! `e = 0.5 : 0.9 : 5`; Latin hypercube lines `e uniform 0.5 0.9` / `g normal 9.81 0.1`;
//! Sobol lines `e 0.5 0.9`; or pasted CSV cases), and KPI lines `max h` /
//! `first_crossing h 0.5`. A problem names its field and its line, so the form can come back
//! with it next to what was typed.

use crate::domain::runs::RunRequest;
use crate::domain::sweeps::SweepRequest;
use crate::domain::sweeps::design::{self, Axis, Bounds, Design, Distribution, Levels};
use crate::sim::kpi::{KpiKind, KpiSpec};
use crate::sim::plan::{Problem, RunSettings};

/// Which design the form's radio buttons chose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DesignKind {
    #[default]
    Grid,
    LatinHypercube,
    Sobol,
    Csv,
}

impl DesignKind {
    pub const ALL: [DesignKind; 4] = [
        DesignKind::Grid,
        DesignKind::LatinHypercube,
        DesignKind::Sobol,
        DesignKind::Csv,
    ];

    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            DesignKind::Grid => "grid",
            DesignKind::LatinHypercube => "lhs",
            DesignKind::Sobol => "sobol",
            DesignKind::Csv => "csv",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DesignKind::Grid => "Grid",
            DesignKind::LatinHypercube => "Latin hypercube",
            DesignKind::Sobol => "Sobol",
            DesignKind::Csv => "CSV cases",
        }
    }

    fn parse(value: &str) -> Option<DesignKind> {
        DesignKind::ALL.into_iter().find(|k| k.as_str() == value)
    }
}

/// Which button sent the form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Action {
    /// Show the cases and the cost; nothing is reserved.
    #[default]
    Quote,
    Start,
}

/// Everything typed into the form, kept as typed so it comes back unchanged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepForm {
    pub name: String,
    pub fmu: String,
    pub stop_time: String,
    pub output_interval: String,
    pub start_values: String,
    pub design: DesignKind,
    pub grid: String,
    pub lhs_n: String,
    pub lhs_seed: String,
    pub lhs: String,
    pub sobol_n: String,
    pub sobol_seed: String,
    pub sobol: String,
    pub csv: String,
    pub kpis: String,
    pub trajectories: bool,
    /// The form's attempt token: one sweep per rendered form, however often it is sent.
    pub attempt: String,
    pub action: Action,
}

impl SweepForm {
    /// The form from its decoded `key=value` pairs (unknown keys, like the CSRF token, are
    /// not the form's business).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> SweepForm {
        let mut form = SweepForm::default();
        for (key, value) in pairs {
            match key.as_str() {
                "name" => form.name = value,
                "fmu" => form.fmu = value,
                "stop_time" => form.stop_time = value,
                "output_interval" => form.output_interval = value,
                "start_values" => form.start_values = value,
                "design" => form.design = DesignKind::parse(&value).unwrap_or_default(),
                "grid" => form.grid = value,
                "lhs_n" => form.lhs_n = value,
                "lhs_seed" => form.lhs_seed = value,
                "lhs" => form.lhs = value,
                "sobol_n" => form.sobol_n = value,
                "sobol_seed" => form.sobol_seed = value,
                "sobol" => form.sobol = value,
                "csv" => form.csv = value,
                "kpis" => form.kpis = value,
                "trajectories" => form.trajectories = !value.is_empty(),
                "attempt" => form.attempt = value.chars().take(128).collect(),
                "action" if value == "start" => form.action = Action::Start,
                _ => {}
            }
        }
        form
    }

    /// The domain's request, or every problem found in what was typed (the domain then
    /// checks the cases against the model).
    pub fn request(&self, max_cases: u64) -> Result<SweepRequest, Vec<Problem>> {
        let mut problems = Vec::new();
        if self.fmu.trim().is_empty() {
            problems.push(Problem::new("fmu", "choose a model"));
        }
        let stop_time = optional_number("stop_time", &self.stop_time, &mut problems);
        let output_interval =
            optional_number("output_interval", &self.output_interval, &mut problems);
        let start_values = start_values(&self.start_values, &mut problems);
        let design = self.design(max_cases, &mut problems);
        let kpis = kpis(&self.kpis, &mut problems);
        match design {
            Some(design) if problems.is_empty() => Ok(SweepRequest {
                base: RunRequest {
                    fmu: self.fmu.trim().to_string(),
                    settings: RunSettings {
                        stop_time,
                        output_interval,
                        start_values,
                        ..RunSettings::default()
                    },
                    timeout: None,
                    name: Some(self.name.trim().to_string()).filter(|n| !n.is_empty()),
                    states: Default::default(),
                    reference: None,
                },
                design_shown: design.shown(),
                design,
                kpis,
                trajectories: self.trajectories,
            }),
            _ => Err(problems),
        }
    }

    fn design(&self, max_cases: u64, problems: &mut Vec<Problem>) -> Option<Design> {
        let found = problems.len();
        let design = match self.design {
            DesignKind::Grid => Design::Grid(grid(&self.grid, problems)),
            DesignKind::LatinHypercube => Design::LatinHypercube {
                n: count("lhs_n", &self.lhs_n, problems),
                seed: seed("lhs_seed", &self.lhs_seed, problems),
                parameters: latin_hypercube(&self.lhs, problems),
            },
            DesignKind::Sobol => Design::Sobol {
                n: count("sobol_n", &self.sobol_n, problems),
                seed: seed("sobol_seed", &self.sobol_seed, problems),
                parameters: sobol(&self.sobol, problems),
            },
            DesignKind::Csv => match design::cases_from_csv(&self.csv, max_cases) {
                Ok(cases) => Design::Cases(cases),
                Err(found) => {
                    problems.extend(found.0.into_iter().map(|p| Problem::new("csv", p.message)));
                    return None;
                }
            },
        };
        (problems.len() == found).then_some(design)
    }
}

/// A number field: empty is `None` (the model's default).
fn optional_number(field: &str, text: &str, problems: &mut Vec<Problem>) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Some(v),
        _ => {
            problems.push(Problem::new(field, format!("'{text}' is not a number")));
            None
        }
    }
}

/// The count of a random design (`n`).
fn count(field: &str, text: &str, problems: &mut Vec<Problem>) -> u32 {
    text.trim().parse::<u32>().unwrap_or_else(|_| {
        problems.push(Problem::new(
            field,
            format!(
                "the number of cases must be a whole number, not '{}'",
                text.trim()
            ),
        ));
        0
    })
}

/// A random design's seed: empty draws one (shown on the sweep's page, to repeat it).
fn seed<T: std::str::FromStr>(field: &str, text: &str, problems: &mut Vec<Problem>) -> T
where
    rand::distributions::Standard: rand::distributions::Distribution<T>,
{
    let text = text.trim();
    if text.is_empty() {
        return rand::random();
    }
    text.parse().unwrap_or_else(|_| {
        problems.push(Problem::new(
            field,
            format!("the seed must be a whole number, not '{text}'"),
        ));
        rand::random()
    })
}

/// The lines of a text area that say something, numbered from 1 as people count them.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn line_problem(field: &str, line: usize, message: impl std::fmt::Display) -> Problem {
    Problem::new(field, format!("line {line}: {message}"))
}

/// `name = value` lines.
fn start_values(text: &str, problems: &mut Vec<Problem>) -> Vec<(String, String)> {
    let mut values = Vec::new();
    for (n, line) in lines(text) {
        match line.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
                values.push((name.trim().to_string(), value.trim().to_string()));
            }
            _ => problems.push(line_problem(
                "start_values",
                n,
                format!("write 'name = value', not '{line}'"),
            )),
        }
    }
    values
}

/// Grid lines: `e = 0.5, 0.7, 0.9` (the values) or `e = 0.5 : 0.9 : 5` (5 evenly spaced
/// values from 0.5 to 0.9).
fn grid(text: &str, problems: &mut Vec<Problem>) -> Vec<Axis> {
    let mut axes = Vec::new();
    for (n, line) in lines(text) {
        let Some((name, levels)) = line
            .split_once('=')
            .filter(|(name, _)| !name.trim().is_empty())
        else {
            problems.push(line_problem(
                "grid",
                n,
                format!("write 'name = 1, 2, 3' or 'name = start : stop : count', not '{line}'"),
            ));
            continue;
        };
        let parts: Vec<&str> = levels.split(':').map(str::trim).collect();
        let levels = match parts.as_slice() {
            [start, stop, num] => {
                match (
                    start.parse::<f64>(),
                    stop.parse::<f64>(),
                    num.parse::<u32>(),
                ) {
                    (Ok(start), Ok(stop), Ok(num)) => Levels::Range { start, stop, num },
                    _ => {
                        problems.push(line_problem(
                            "grid",
                            n,
                            "a range is 'start : stop : count' (two numbers and a whole count)",
                        ));
                        continue;
                    }
                }
            }
            [values] => {
                let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
                if values.iter().any(String::is_empty) {
                    problems.push(line_problem("grid", n, "a value is missing between commas"));
                    continue;
                }
                Levels::Values(values)
            }
            _ => {
                problems.push(line_problem("grid", n, "a range is 'start : stop : count'"));
                continue;
            }
        };
        axes.push(Axis {
            name: name.trim().to_string(),
            levels,
        });
    }
    axes
}

/// Two numbers after a name (`low high`, `mean sd`); `None` with a problem otherwise.
fn two_numbers(
    field: &str,
    n: usize,
    words: &[&str],
    what: &str,
    problems: &mut Vec<Problem>,
) -> Option<(f64, f64)> {
    match words {
        [a, b] => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(a), Ok(b)) => Some((a, b)),
            _ => {
                problems.push(line_problem(field, n, format!("{what} must be numbers")));
                None
            }
        },
        _ => {
            problems.push(line_problem(field, n, format!("give {what}")));
            None
        }
    }
}

/// Latin hypercube lines: `e uniform 0.5 0.9` or `g normal 9.81 0.1`.
fn latin_hypercube(text: &str, problems: &mut Vec<Problem>) -> Vec<(String, Distribution)> {
    let mut parameters = Vec::new();
    for (n, line) in lines(text) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let distribution = match words.as_slice() {
            [_, "uniform", rest @ ..] => two_numbers("lhs", n, rest, "low and high", problems)
                .map(|(low, high)| Distribution::Uniform { low, high }),
            [_, "normal", rest @ ..] => two_numbers("lhs", n, rest, "mean and sd", problems)
                .map(|(mean, sd)| Distribution::Normal { mean, sd }),
            _ => {
                problems.push(line_problem(
                    "lhs",
                    n,
                    format!("write 'name uniform low high' or 'name normal mean sd', not '{line}'"),
                ));
                None
            }
        };
        if let Some(d) = distribution {
            parameters.push((words[0].to_string(), d));
        }
    }
    parameters
}

/// Sobol lines: `e 0.5 0.9` (a name, its low and high bounds).
fn sobol(text: &str, problems: &mut Vec<Problem>) -> Vec<(String, Bounds)> {
    let mut parameters = Vec::new();
    for (n, line) in lines(text) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((name, rest)) = words.split_first() else {
            continue;
        };
        if let Some((low, high)) = two_numbers("sobol", n, rest, "low and high", problems) {
            parameters.push((name.to_string(), Bounds { low, high }));
        }
    }
    parameters
}

/// KPI lines: `max h`, `first_crossing h 0.5`.
fn kpis(text: &str, problems: &mut Vec<Problem>) -> Vec<KpiSpec> {
    let mut kpis = Vec::new();
    for (n, line) in lines(text) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let kind = match words.as_slice() {
            ["final", _] => KpiKind::Final,
            ["min", _] => KpiKind::Min,
            ["max", _] => KpiKind::Max,
            ["mean", _] => KpiKind::Mean,
            ["integral", _] => KpiKind::Integral,
            ["time_of_max", _] => KpiKind::TimeOfMax,
            ["time_of_min", _] => KpiKind::TimeOfMin,
            ["first_crossing", _, level] => match level.parse::<f64>() {
                Ok(level) if level.is_finite() => KpiKind::FirstCrossing { level },
                _ => {
                    problems.push(line_problem("kpis", n, "the level must be a number"));
                    continue;
                }
            },
            _ => {
                problems.push(line_problem(
                    "kpis",
                    n,
                    format!(
                        "write 'kind variable' (final, min, max, mean, integral, time_of_max, \
                         time_of_min) or 'first_crossing variable level', not '{line}'"
                    ),
                ));
                continue;
            }
        };
        kpis.push(KpiSpec {
            variable: words[1].to_string(),
            kind,
        });
    }
    kpis
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> SweepForm {
        SweepForm::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn a_grid_form_becomes_the_request_the_api_would_make() {
        let f = form(&[
            ("fmu", "lib:BouncingBall"),
            ("stop_time", "2"),
            ("output_interval", "0.01"),
            ("start_values", "h = 1.5\n"),
            ("design", "grid"),
            ("grid", "e = 0.5, 0.7, 0.9\n\ng = 9 : 10 : 3"),
            ("kpis", "max h\nfirst_crossing h 0.5"),
            ("trajectories", "on"),
            ("action", "start"),
        ]);
        assert_eq!(f.action, Action::Start);
        let r = f.request(10_000).unwrap();
        assert_eq!(r.base.fmu, "lib:BouncingBall");
        assert_eq!(r.base.settings.stop_time, Some(2.0));
        assert_eq!(r.base.settings.output_interval, Some(0.01));
        assert_eq!(r.base.settings.start_values, [("h".into(), "1.5".into())]);
        assert_eq!(
            r.design,
            Design::Grid(vec![
                Axis {
                    name: "e".into(),
                    levels: Levels::Values(vec!["0.5".into(), "0.7".into(), "0.9".into()])
                },
                Axis {
                    name: "g".into(),
                    levels: Levels::Range {
                        start: 9.0,
                        stop: 10.0,
                        num: 3
                    }
                },
            ])
        );
        assert_eq!(r.design.count(), Some(9));
        assert_eq!(r.kpis.len(), 2);
        assert_eq!(r.kpis[1].kind, KpiKind::FirstCrossing { level: 0.5 });
        assert!(r.trajectories);
    }

    #[test]
    fn random_designs_keep_their_seed_and_distributions() {
        let f = form(&[
            ("fmu", "lib:BouncingBall"),
            ("design", "lhs"),
            ("lhs_n", "20"),
            ("lhs_seed", "7"),
            ("lhs", "e uniform 0.5 0.9\ng normal 9.81 0.1"),
        ]);
        let r = f.request(10_000).unwrap();
        assert_eq!(
            r.design,
            Design::LatinHypercube {
                n: 20,
                seed: 7,
                parameters: vec![
                    (
                        "e".into(),
                        Distribution::Uniform {
                            low: 0.5,
                            high: 0.9
                        }
                    ),
                    (
                        "g".into(),
                        Distribution::Normal {
                            mean: 9.81,
                            sd: 0.1
                        }
                    ),
                ]
            }
        );
        let f = form(&[
            ("fmu", "lib:BouncingBall"),
            ("design", "sobol"),
            ("sobol_n", "8"),
            ("sobol", "e 0.5 0.9"),
        ]);
        let Design::Sobol { n, parameters, .. } = f.request(10_000).unwrap().design else {
            panic!("a Sobol design");
        };
        assert_eq!(n, 8);
        assert_eq!(
            parameters,
            [(
                "e".to_string(),
                Bounds {
                    low: 0.5,
                    high: 0.9
                }
            )]
        );
    }

    #[test]
    fn pasted_csv_cases_are_the_cases() {
        let f = form(&[
            ("fmu", "lib:BouncingBall"),
            ("design", "csv"),
            ("csv", "e,h\n0.5,1\n0.7,\n"),
        ]);
        assert_eq!(
            f.request(10_000).unwrap().design,
            Design::Cases(vec![
                vec![("e".into(), "0.5".into()), ("h".into(), "1".into())],
                vec![("e".into(), "0.7".into())],
            ])
        );
    }

    #[test]
    fn every_problem_names_its_field_and_line() {
        let f = form(&[
            ("stop_time", "soon"),
            ("start_values", "h = 1\nnonsense"),
            ("design", "grid"),
            ("grid", "e = 0.5, 0.7\n\ng = 1 : x : 3"),
            ("kpis", "max h\nbiggest h\nfirst_crossing h high"),
        ]);
        let problems = f.request(10_000).unwrap_err();
        let said: Vec<(String, String)> =
            problems.into_iter().map(|p| (p.field, p.message)).collect();
        let has =
            |field: &str, start: &str| said.iter().any(|(f, m)| f == field && m.starts_with(start));
        assert!(has("fmu", "choose a model"), "{said:?}");
        assert!(has("stop_time", "'soon' is not a number"), "{said:?}");
        assert!(has("start_values", "line 2:"), "{said:?}");
        assert!(has("grid", "line 3: a range"), "{said:?}");
        assert!(has("kpis", "line 2: write"), "{said:?}");
        assert!(has("kpis", "line 3: the level"), "{said:?}");
        assert_eq!(said.len(), 6, "{said:?}");
        let f = form(&[
            ("fmu", "lib:X"),
            ("design", "lhs"),
            ("lhs_n", "ten"),
            ("lhs", "e triangular 0 1"),
        ]);
        let said = f.request(10_000).unwrap_err();
        assert_eq!(said[0].field, "lhs_n");
        assert!(said[1].message.starts_with("line 1: write"), "{said:?}");
        let f = form(&[("fmu", "lib:X"), ("design", "csv"), ("csv", "e\n1\n1,2\n")]);
        let said = f.request(10_000).unwrap_err();
        assert_eq!(said[0].field, "csv");
        assert!(said[0].message.contains("line 3"), "{said:?}");
    }
}
