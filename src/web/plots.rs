//! Interactive plots of run results, and the page that compares runs.
//!
//! A plot is drawn twice over: on the server as SVG (`charts`), one panel per unit, which is
//! what a page without JavaScript shows and what the SVG export downloads; and in the
//! browser by uPlot (`assets/plot.js`), from `plot.json`, which the server downsamples to
//! the plot's width keeping each pixel column's extremes (`sim::downsample`), so a run of a
//! million rows arrives as a few thousand real samples. When the interactive plot is drawn
//! it hides the SVG; until then, or when it cannot be, the SVG is the plot.

use std::collections::BTreeSet;

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Request, Response, handler};

use super::charts::{self, Curve, PlotOptions, ReferenceLine};
use super::error::WebError;
use super::layout::{self, Nav};
use super::{CurrentSession, assets, html, paths};
use crate::auth::session::Session;
use crate::domain::error::AppError;
use crate::domain::fmus;
use crate::domain::ids::RunId;
use crate::domain::runs::{self, StoredSettings};
use crate::format::Number;
use crate::sim::recorded::{Storage, ValueType};
use crate::sim::reference::{Reference, ReferenceCheck};
use crate::sim::result_file::{PlotData, PlotGroup, PlotSample, ResultFile};
use crate::state::State;
use crate::store::runs::RunRow;

/// Pixel columns of the server's SVG (its drawing is 720 units wide; a little more keeps
/// the steepest edges sharp) and of `plot.json` when the browser does not say.
const SVG_WIDTH: usize = 1000;
/// The widest plot `plot.json` draws for (a 4K screen's width).
const MAX_WIDTH: usize = 4096;
/// How many runs the compare page sets side by side.
const COMPARE_RUNS: std::ops::RangeInclusive<usize> = 2..=5;
/// Variables the overlay shows before the user picks.
const DEFAULT_OVERLAY: usize = 3;

/// What a page that plots adds to its `<head>`: uPlot's stylesheet and script, and ours.
pub fn head() -> Markup {
    html! {
        link rel="stylesheet" href=(assets::url("uPlot.min.css"));
        script src=(assets::url("uPlot.iife.min.js")) defer {}
        script src=(assets::url("plot.js")) defer {}
    }
}

/// A series' label: its name and unit, as the legend and the SVG show it ("h [m]").
fn label(name: &str, unit: Option<&str>) -> String {
    match unit {
        Some(u) => format!("{name} [{u}]"),
        None => name.to_string(),
    }
}

/// The short name of a run in legends: "run" and the first six characters of its id.
fn short(id: &RunId) -> String {
    let tail = id.as_str().trim_start_matches("run_");
    format!("run {}", tail.get(..6).unwrap_or(tail))
}

/// `/runs/{id}/plot.json` for these variables (all when empty).
fn plot_json_url(id: &RunId, vars: &[String]) -> String {
    let path = paths::run_plot_json(id);
    if vars.is_empty() {
        path
    } else {
        super::with_query(&path, vars.iter().map(|v| ("var", v.as_str())))
    }
}

/// The query's pairs, in order (a key may repeat: `var=a&var=b`).
fn query_pairs(req: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn values_of(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .collect()
}

/// The `width` asked for: whole pixels, 1 to [`MAX_WIDTH`]; [`SVG_WIDTH`] when not given.
fn width_of(pairs: &[(String, String)]) -> Result<usize, WebError> {
    match values_of(pairs, "width").last() {
        None => Ok(SVG_WIDTH),
        Some(w) => w
            .parse::<usize>()
            .ok()
            .filter(|w| (1..=MAX_WIDTH).contains(w))
            .ok_or_else(|| {
                AppError::Invalid(format!(
                    "width must be a whole number of pixels from 1 to {MAX_WIDTH}, not '{w}'"
                ))
                .into()
            }),
    }
}

/// The float variables the run's model declares discrete (drawn as steps like integers).
/// A model no longer there (an upload since deleted) names none: its floats are drawn as
/// lines, which changes the look, never a value.
async fn discrete_floats(state: &State, s: &Session, run: &RunRow) -> Vec<String> {
    match fmus::resolve(state, &s.user.id, run.fmu_id.as_str()).await {
        Ok(model) => model
            .info
            .variables
            .iter()
            .filter(|v| {
                v.variability == "discrete"
                    && ValueType::from_fmi(&v.r#type).is_some_and(|t| t.storage() == Storage::Float)
            })
            .map(|v| v.name.clone())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The run's numeric results (those in `vars`, or all), grouped by unit and downsampled to
/// `width`. A name the result has no number for is an error, never left out in silence.
async fn plot_data(
    state: &State,
    s: &Session,
    run: &RunRow,
    result: ResultFile,
    vars: &[String],
    width: usize,
) -> Result<PlotData, WebError> {
    let unknown: Vec<&String> = vars
        .iter()
        .filter(|v| {
            !result
                .column_variables()
                .any(|(column, var)| var.r#type.is_numeric() && (column == *v || var.name == **v))
        })
        .collect();
    if !unknown.is_empty() {
        let names: Vec<&str> = unknown.iter().map(|v| v.as_str()).collect();
        return Err(AppError::Invalid(format!(
            "run {} has no numeric result named {}",
            run.id,
            names.join(", ")
        ))
        .into());
    }
    let discrete = discrete_floats(state, s, run).await;
    let wanted = (!vars.is_empty()).then(|| vars.to_vec());
    let data =
        tokio::task::spawn_blocking(move || result.plot_data(wanted.as_deref(), &discrete, width))
            .await
            .map_err(AppError::from)?
            .map_err(AppError::from)?;
    Ok(data)
}

/// `plot.json`: the data of a run's interactive plot ([`PlotData`]), `?width=` pixel columns
/// wide, of the variables named by `?var=` (all numeric ones when none).
#[handler]
pub async fn json(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<RunId>,
    req: &Request,
) -> Result<Response, WebError> {
    let pairs = query_pairs(req);
    let width = width_of(&pairs)?;
    let run = runs::get(&state.store, &s.user.id, &id).await?;
    let result = runs::result(&state, &run).await?;
    let data = plot_data(&state, &s, &run, result, &values_of(&pairs, "var"), width).await?;
    let body = serde_json::to_vec(&data).map_err(AppError::from)?;
    Ok(Response::builder()
        .content_type("application/json")
        .header("Cache-Control", "no-store")
        .body(body))
}

/// `plot.svg`: a run's plot as a standalone SVG file (one panel per unit), the plot's SVG
/// export; `?var=` picks variables as `plot.json` does.
#[handler]
pub async fn svg(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<RunId>,
    req: &Request,
) -> Result<Response, WebError> {
    let pairs = query_pairs(req);
    let run = runs::get(&state.store, &s.user.id, &id).await?;
    let result = runs::result(&state, &run).await?;
    let data = plot_data(
        &state,
        &s,
        &run,
        result,
        &values_of(&pairs, "var"),
        SVG_WIDTH,
    )
    .await?;
    let panels: Vec<Markup> = data
        .groups
        .iter()
        .map(|g| group_panel(&run.fmu_name, g))
        .collect();
    Ok(svg_file(&format!("{}.svg", run.id), &panels))
}

fn svg_file(name: &str, panels: &[Markup]) -> Response {
    Response::builder()
        .content_type("image/svg+xml")
        .header("Cache-Control", "no-store")
        .header(
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        )
        .body(charts::stacked_document(panels))
}

/// The options of one unit's panel: its unit on the y axis, its discrete series as steps.
fn panel_options(title: &str, unit: Option<&str>, stepped: Vec<String>) -> PlotOptions {
    PlotOptions {
        title: Some(title.to_string()),
        y_label: unit.map(|u| format!("[{u}]")),
        stepped,
        ..PlotOptions::default()
    }
}

/// One unit's panel of a run's plot.
fn group_panel(title: &str, group: &PlotGroup) -> Markup {
    let labels: Vec<String> = group
        .series
        .iter()
        .map(|s| label(&s.name, group.unit.as_deref()))
        .collect();
    let curves: Vec<Curve<'_>> = group
        .series
        .iter()
        .zip(&labels)
        .map(|(s, name)| Curve {
            name,
            time: &group.time,
            values: &s.values,
        })
        .collect();
    let stepped = group
        .series
        .iter()
        .zip(&labels)
        .filter(|(s, _)| s.discrete)
        .map(|(_, l)| l.clone())
        .collect();
    charts::curves_plot(
        &curves,
        &[],
        &panel_options(title, group.unit.as_deref(), stepped),
    )
}

/// The reference's numeric columns that the plot also draws from the result: (name, values).
fn reference_columns<'a>(
    reference: &'a Reference,
    output: &PlotSample,
) -> Vec<(&'a str, Vec<f64>)> {
    reference
        .columns
        .iter()
        .filter(|c| output.series.iter().any(|(n, _)| *n == c.name))
        .map(|c| {
            let values = c
                .cells
                .iter()
                .map(|cell| match cell.trim() {
                    "true" => 1.0,
                    "false" => 0.0,
                    // A cell that is not a number leaves a gap, as NaN does.
                    other => other.parse().unwrap_or(f64::NAN),
                })
                .collect();
            (c.name.as_str(), values)
        })
        .collect()
}

/// The run page's plot: the server's SVG, one panel per unit (the reference dashed under its
/// series, where the run has one), which the interactive plot replaces once it has drawn;
/// and the exports. A run with a reference keeps its SVG: the interactive plot does not draw
/// references and their marks yet.
pub fn run_figure(
    run: &RunRow,
    out: &PlotSample,
    reference: Option<&Reference>,
    check: Option<&ReferenceCheck>,
) -> Markup {
    let columns = reference.map_or_else(Vec::new, |r| reference_columns(r, out));
    let mut units: Vec<Option<&str>> = Vec::new();
    for u in &out.units {
        if !units.contains(&u.as_deref()) {
            units.push(u.as_deref());
        }
    }
    let panels: Vec<Markup> = units
        .iter()
        .map(|&unit| {
            let in_panel: Vec<usize> = (0..out.series.len())
                .filter(|&i| out.units[i].as_deref() == unit)
                .collect();
            let labels: Vec<String> = in_panel
                .iter()
                .map(|&i| label(&out.series[i].0, unit))
                .collect();
            let curves: Vec<Curve<'_>> = in_panel
                .iter()
                .zip(&labels)
                .map(|(&i, name)| Curve {
                    name,
                    time: &out.time,
                    values: &out.series[i].1,
                })
                .collect();
            let lines: Vec<ReferenceLine<'_>> = columns
                .iter()
                .filter_map(|(name, values)| {
                    let i = in_panel.iter().position(|&i| out.series[i].0 == *name)?;
                    Some(ReferenceLine {
                        name: &labels[i],
                        time: reference.map_or(&[][..], |r| r.time.as_slice()),
                        values,
                        first_outside: check
                            .and_then(|c| c.variables.iter().find(|v| v.name == *name))
                            .and_then(|v| v.first_outside),
                    })
                })
                .collect();
            let stepped = in_panel
                .iter()
                .zip(&labels)
                .filter(|(i, _)| out.discrete[**i])
                .map(|(_, l)| l.clone())
                .collect();
            let opts = panel_options(&run.fmu_name, unit, stepped);
            charts::curves_plot(&curves, &lines, &opts)
        })
        .collect();
    let sources = (reference.is_none()).then(|| {
        serde_json::json!([{ "url": plot_json_url(&run.id, &[]), "label": "" }]).to_string()
    });
    plot_box(
        "run-plot",
        sources,
        &panels,
        &paths::run_plot_svg(&run.id),
        &format!("{}.png", run.id),
    )
}

/// The plot's box: the SVG panels (the whole plot without JavaScript), the sources the
/// interactive plot reads (`data-plot`, JSON: `[{url, label}]`), and the export links.
fn plot_box(
    id: &str,
    sources: Option<String>,
    panels: &[Markup],
    svg_href: &str,
    png_name: &str,
) -> Markup {
    html! {
        div.plot id=(id) data-plot=[sources] {
            div.plot-svg {
                @for panel in panels { figure { (panel) } }
            }
            p.plot-export {
                "Export: "
                // The server answers it as an attachment (no `download` attribute needed).
                a.button.plot-svg-link href=(svg_href) aria-label="Export the plot as SVG" { "SVG" } " "
                // plot.js shows it once the interactive plot has drawn (there is no canvas
                // to export before) and saves the canvases as `png_name`.
                button.plot-png type="button" data-name=(png_name) aria-label="Export the plot as PNG" hidden { "PNG" }
            }
        }
    }
}

/// The stored settings of a run, if they parse (they always should; a bad row is logged).
fn settings_of(run: &RunRow) -> Option<StoredSettings> {
    serde_json::from_str(&run.settings)
        .inspect_err(|e| tracing::error!(error = %e, run = %run.id, "stored settings do not parse"))
        .ok()
}

/// One row of the compare table: a setting's label and its value in each run.
struct SettingRow {
    label: String,
    values: Vec<String>,
}

impl SettingRow {
    fn differs(&self) -> bool {
        self.values.iter().any(|v| *v != self.values[0])
    }
}

/// The settings the compare table sets side by side, one row each, then one row per start
/// value any of the runs set ("—" where a run did not).
fn setting_rows(runs: &[RunRow]) -> Vec<SettingRow> {
    let settings: Vec<Option<StoredSettings>> = runs.iter().map(settings_of).collect();
    let text = |f: &dyn Fn(&StoredSettings) -> String| -> Vec<String> {
        settings
            .iter()
            .map(|s| s.as_ref().map_or("—".to_string(), f))
            .collect()
    };
    let mut rows = vec![
        SettingRow {
            label: "Model".into(),
            values: runs.iter().map(|r| r.fmu_name.clone()).collect(),
        },
        SettingRow {
            label: "Model id".into(),
            // 12 hex digits tell uploads apart (the model's page has the whole id).
            values: runs
                .iter()
                .map(|r| {
                    let id = r.fmu_id.as_str();
                    id.get(..12).map_or(id.to_string(), |s| format!("{s}…"))
                })
                .collect(),
        },
        SettingRow {
            label: "Interface".into(),
            values: text(&|s| s.interface.as_str().to_string()),
        },
        SettingRow {
            label: "Solver".into(),
            values: text(&|s| s.solver.as_str().to_string()),
        },
        SettingRow {
            label: "Start time [s]".into(),
            values: text(&|s| Number(s.start_time).to_string()),
        },
        SettingRow {
            label: "Stop time [s]".into(),
            values: text(&|s| Number(s.stop_time).to_string()),
        },
        SettingRow {
            label: "Output interval [s]".into(),
            values: text(&|s| Number(s.output_interval).to_string()),
        },
        SettingRow {
            label: "Step size [s]".into(),
            values: text(&|s| s.step_size.map_or("—".into(), |v| Number(v).to_string())),
        },
        SettingRow {
            label: "Tolerance".into(),
            values: text(&|s| Number(s.tolerance).to_string()),
        },
    ];
    let names: BTreeSet<&str> = settings
        .iter()
        .flatten()
        .flat_map(|s| s.start_values.iter().map(|(n, _)| n.as_str()))
        .collect();
    for name in names {
        rows.push(SettingRow {
            label: format!("Start value {name}"),
            values: text(&|s| {
                s.start_values
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or("—".into(), |(_, v)| v.clone())
            }),
        });
    }
    rows.push(SettingRow {
        label: "Status".into(),
        values: runs.iter().map(|r| r.status.as_str().to_string()).collect(),
    });
    rows.push(SettingRow {
        label: "Charge".into(),
        values: runs.iter().map(charge).collect(),
    });
    rows
}

/// What a run cost, as the compare table shows it.
fn charge(run: &RunRow) -> String {
    if !run.status.is_finished() {
        format!("{} held", run.credits_reserved.describe())
    } else if run.charged {
        format!("charged {}", run.credits_charged.describe())
    } else {
        "not charged".to_string()
    }
}

/// The runs a compare request names: 2 to 5 distinct ids, each a run of this user.
async fn compared_runs(
    state: &State,
    s: &Session,
    pairs: &[(String, String)],
) -> Result<Vec<RunRow>, WebError> {
    let mut ids: Vec<String> = Vec::new();
    for id in values_of(pairs, "run") {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if !COMPARE_RUNS.contains(&ids.len()) {
        return Err(WebError::Status(
            StatusCode::BAD_REQUEST,
            format!(
                "Choose {} to {} different runs to compare (this asked for {}): tick them in the runs list.",
                COMPARE_RUNS.start(),
                COMPARE_RUNS.end(),
                ids.len()
            ),
        ));
    }
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        let run = runs::get(&state.store, &s.user.id, &RunId::from(id.as_str()))
            .await
            .map_err(|_| {
                WebError::Status(
                    StatusCode::NOT_FOUND,
                    format!("You have no run {id} to compare."),
                )
            })?;
        rows.push(run);
    }
    Ok(rows)
}

/// The numeric result columns every run with results has, in the first one's order.
async fn common_variables(state: &State, runs: &[RunRow]) -> Result<Vec<String>, WebError> {
    let mut common: Option<Vec<String>> = None;
    for run in runs {
        let Some(result) = runs::kept_result(state, run).await? else {
            continue;
        };
        let names: Vec<String> = result
            .column_types()
            .filter(|(_, t)| t.is_numeric())
            .map(|(n, _)| n.to_string())
            .collect();
        common = Some(match common {
            None => names,
            Some(kept) => kept.into_iter().filter(|n| names.contains(n)).collect(),
        });
    }
    Ok(common.unwrap_or_default())
}

/// The overlay's variables: those ticked (each must be common to the runs), or the first few.
fn chosen_variables(
    pairs: &[(String, String)],
    common: &[String],
) -> Result<Vec<String>, WebError> {
    let asked = values_of(pairs, "var");
    if asked.is_empty() {
        return Ok(common.iter().take(DEFAULT_OVERLAY).cloned().collect());
    }
    match asked.iter().find(|v| !common.contains(v)) {
        Some(v) => Err(WebError::Status(
            StatusCode::BAD_REQUEST,
            format!(
                "'{v}' is not a numeric result of every run compared, so it cannot be overlaid."
            ),
        )),
        None => Ok(asked),
    }
}

/// The overlay's data: per run with results, its chosen variables grouped by unit.
async fn overlay_data(
    state: &State,
    s: &Session,
    runs: &[RunRow],
    chosen: &[String],
) -> Result<Vec<(RunRow, PlotData)>, WebError> {
    let mut out = Vec::new();
    if chosen.is_empty() {
        return Ok(out);
    }
    for run in runs {
        if let Some(result) = runs::kept_result(state, run).await? {
            let data = plot_data(state, s, run, result, chosen, SVG_WIDTH).await?;
            out.push((run.clone(), data));
        }
    }
    Ok(out)
}

/// The overlay as SVG panels, one per unit: a curve per run × variable ("run abc123 · h [m]").
fn overlay_panels(data: &[(RunRow, PlotData)]) -> Vec<Markup> {
    let mut units: Vec<Option<&str>> = Vec::new();
    for (_, d) in data {
        for g in &d.groups {
            if !units.contains(&g.unit.as_deref()) {
                units.push(g.unit.as_deref());
            }
        }
    }
    units
        .iter()
        .map(|&unit| {
            let mut names = Vec::new();
            let mut parts = Vec::new();
            for (run, d) in data {
                for g in d.groups.iter().filter(|g| g.unit.as_deref() == unit) {
                    for s in &g.series {
                        names.push(format!("{} · {}", short(&run.id), label(&s.name, unit)));
                        parts.push((g, s));
                    }
                }
            }
            let curves: Vec<Curve<'_>> = parts
                .iter()
                .zip(&names)
                .map(|((g, s), name)| Curve {
                    name,
                    time: &g.time,
                    values: &s.values,
                })
                .collect();
            let stepped = parts
                .iter()
                .zip(&names)
                .filter(|((_, s), _)| s.discrete)
                .map(|(_, n)| n.clone())
                .collect();
            charts::curves_plot(&curves, &[], &panel_options("Overlay", unit, stepped))
        })
        .collect()
}

/// What the compare page and its SVG export draw from the query: the runs, the variables
/// they have in common, those chosen, and each run's data for them.
struct Compared {
    runs: Vec<RunRow>,
    common: Vec<String>,
    chosen: Vec<String>,
    data: Vec<(RunRow, PlotData)>,
}

async fn compared(state: &State, s: &Session, req: &Request) -> Result<Compared, WebError> {
    let pairs = query_pairs(req);
    let runs = compared_runs(state, s, &pairs).await?;
    let common = common_variables(state, &runs).await?;
    let chosen = chosen_variables(&pairs, &common)?;
    let data = overlay_data(state, s, &runs, &chosen).await?;
    Ok(Compared {
        runs,
        common,
        chosen,
        data,
    })
}

/// `/runs/compare?run=…&run=…[&var=…]`: the runs' settings side by side (differences marked)
/// and an overlay of the chosen variables.
#[handler]
pub async fn compare(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    req: &Request,
) -> Result<Response, WebError> {
    let Compared {
        runs,
        common,
        chosen,
        data,
    } = compared(&state, &s, req).await?;
    let rows = setting_rows(&runs);
    let run_pairs: Vec<(&str, &str)> = runs.iter().map(|r| ("run", r.id.as_str())).collect();
    let svg_href = super::with_query(
        paths::RUNS_COMPARE_SVG,
        run_pairs
            .iter()
            .copied()
            .chain(chosen.iter().map(|v| ("var", v.as_str()))),
    );
    let sources = serde_json::Value::Array(
        data.iter()
            .map(|(run, _)| {
                serde_json::json!({ "url": plot_json_url(&run.id, &chosen), "label": short(&run.id) })
            })
            .collect(),
    )
    .to_string();
    let content = html! {
        h1 { "Compare runs" }
        section.card.compare {
            h2 { "Settings" }
            p.muted { "Rows whose values differ are marked " mark { "like this" } "." }
            div.table-scroll {
                table #compare-settings {
                    thead { tr {
                        th scope="col" { "Setting" }
                        @for r in &runs { th scope="col" { a href=(paths::run(&r.id)) { code { (r.id) } } } }
                    } }
                    tbody {
                        @for row in &rows {
                            @let differs = row.differs();
                            tr class=[differs.then_some("differs")] {
                                th scope="row" { (row.label) }
                                @for v in &row.values {
                                    td { @if differs { mark { (v) } } @else { (v) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card {
            h2 { "Overlay" }
            @if common.is_empty() {
                p.muted { "These runs have no numeric result in common (or no results yet) to overlay." }
            } @else {
                form #compare-variables method="get" action=(paths::RUNS_COMPARE) {
                    @for r in &runs { input type="hidden" name="run" value=(r.id); }
                    fieldset {
                        legend { "Variables" }
                        @for v in &common {
                            label.check {
                                input type="checkbox" name="var" value=(v) checked[chosen.contains(v)];
                                " " code { (v) }
                            }
                        }
                    }
                    button type="submit" { "Show" }
                }
                @let panels = overlay_panels(&data);
                (plot_box("compare-plot", (!data.is_empty()).then_some(sources), &panels, &svg_href, "compare.png"))
            }
            @for r in runs.iter().filter(|r| !data.iter().any(|(d, _)| d.id == r.id)) {
                p.muted { (short(&r.id)) " has no results to overlay (it is " (r.status.as_str()) ")." }
            }
        }
        p { a href=(paths::RUNS) { "← All runs" } }
    };
    Ok(html(
        StatusCode::OK,
        layout::page_with_head("Compare runs", Nav::Runs, Some(&s), head(), content),
    ))
}

/// `/runs/compare/plot.svg`: the compare page's overlay as a standalone SVG file.
#[handler]
pub async fn compare_svg(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    req: &Request,
) -> Result<Response, WebError> {
    let data = compared(&state, &s, req).await?.data;
    Ok(svg_file("compare.svg", &overlay_panels(&data)))
}
