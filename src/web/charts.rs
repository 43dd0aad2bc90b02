//! Charts for the dashboard, rendered on the server as inline SVG (`maud::Markup`).
//!
//! [`line_plot`] draws simulation results (one line per variable against time) and
//! [`bar_chart`] draws per-day totals (credits spent, runs). Both are pure functions of their
//! input: no JavaScript, no state, and the same markup whether the chart is part of a full
//! page or an htmx fragment.
//!
//! Rules this module must never break:
//! - **No inline styles or scripts.** The CSP forbids `style` attributes, `<style>` and
//!   `<script>`. Colours, widths and font sizes are SVG presentation attributes (`stroke`,
//!   `fill`, `font-size`, …), which the CSP allows; anything else belongs in `app.css`
//!   (hooks: the `chart`, `series series-N`, `bar`, `legend`, `grid`, `axis` classes).
//! - **No unescaped user text.** Series names, labels and titles are user data and only ever
//!   reach the markup through maud's escaping (never `PreEscaped`). They are also clipped in
//!   length so one long name cannot wreck the layout.
//! - **No unbounded output.** A run can have millions of samples; paths are decimated
//!   (min/max per bucket, so peaks survive) to a fixed point budget, coordinates have two
//!   decimals, and the number of series and bars drawn is capped.
//!
//! Every chart has `role="img"`, an `aria-label` and a `<title>`, and scales with its
//! container (`viewBox` plus `width="100%"`). Empty or unusable input gives a "no data" chart
//! instead of an error, and non-finite values never reach a coordinate.

use std::borrow::Cow;
use std::fmt::Write as _;

use maud::{Markup, html};

/// The drawing size in viewBox units; the SVG itself scales to its container's width.
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 360.0;
const VIEW_BOX: &str = "0 0 720 360";

/// Series colours, chosen to stay distinct and readable on the dashboard's #0f1720.
const PALETTE: [&str; 6] = [
    "#60a5fa", // blue
    "#fbbf24", // amber
    "#34d399", // green
    "#f472b6", // pink
    "#a78bfa", // violet
    "#22d3ee", // cyan
];
const TEXT_COLOR: &str = "#cbd5e1";
const GRID_COLOR: &str = "#1e293b";
const AXIS_COLOR: &str = "#64748b";
const BAR_COLOR: &str = "#60a5fa";
const FONT_SIZE: &str = "11";

/// Space around the plot area: room for tick labels, axis labels, title and legend.
const MARGIN_LEFT: f64 = 68.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 16.0;
const MARGIN_TOP_TITLED: f64 = 36.0;
/// Below the plot: x tick labels and the x axis label.
const MARGIN_BOTTOM: f64 = 44.0;
const LEGEND_ROW: f64 = 18.0;
const LEGEND_COLUMN: f64 = 160.0;

/// Output bounds: series beyond this are listed as "+N more" rather than drawn.
const MAX_SERIES: usize = 12;
/// At most this many points per series path (decimation target).
const MAX_POINTS_PER_SERIES: usize = 2000;
/// Points shared by all series, so many series do not multiply the markup size.
const MAX_POINTS_TOTAL: usize = 12_000;
/// Even with many series each one keeps enough points to show its shape.
const MIN_POINTS_PER_SERIES: usize = 200;
/// Bar charts show the most recent bars beyond this (a year of days).
const MAX_BARS: usize = 366;
/// Clipping for user text (titles, axis labels, legend names, bar labels).
const MAX_LABEL_CHARS: usize = 80;
const MAX_LEGEND_CHARS: usize = 22;
const MAX_BAR_LABEL_CHARS: usize = 12;
/// Values beyond this magnitude are treated like NaN: their differences would overflow.
const MAX_ABS: f64 = 1e300;

/// Options for [`line_plot`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOptions {
    /// Label under the x axis; "time [s]" by default.
    pub x_label: String,
    /// Label along the y axis, if any.
    pub y_label: Option<String>,
    /// Heading drawn above the plot (and used as the SVG `<title>`).
    pub title: Option<String>,
    /// The series that change only at events (integers, Booleans, discrete floats): drawn
    /// as steps, holding each value until the next sample, never as ramps.
    pub stepped: Vec<String>,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            x_label: "time [s]".to_string(),
            y_label: None,
            title: None,
            stepped: Vec::new(),
        }
    }
}

/// Options for [`bar_chart`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarOptions {
    /// Label along the y axis, if any (e.g. "credits").
    pub y_label: Option<String>,
    /// Heading drawn above the chart (and used as the SVG `<title>`).
    pub title: Option<String>,
    /// The values are counts (credits, runs): ticks only at whole numbers, never at 0.2.
    pub whole: bool,
}

/// A line plot of `series` (name, values) against `time`, as an inline SVG.
///
/// Sample `i` of a series is drawn at `(time[i], values[i])`; extra samples on either side
/// (length mismatch) are ignored. A sample where either value is NaN, infinite or beyond
/// ±1e300 is skipped and breaks the line. Long series are decimated to a bounded number of
/// points with min/max bucketing, so spikes stay visible.
pub fn line_plot(time: &[f64], series: &[(&str, &[f64])], opts: &PlotOptions) -> Markup {
    line_plot_with_references(time, series, &[], opts)
}

/// A reference drawn under a result's series ([`line_plot_with_references`]): its own time
/// points, and where the result first leaves the tolerance band, if it does.
#[derive(Debug, Clone, Copy)]
pub struct ReferenceLine<'a> {
    /// The series it belongs to (drawn in that series' colour).
    pub name: &'a str,
    pub time: &'a [f64],
    pub values: &'a [f64],
    pub first_outside: Option<f64>,
}

/// Colour of the marker where a result leaves its reference's band.
const OUTSIDE_COLOR: &str = "#ef4444";

/// [`line_plot`] with references: each drawn dashed, in its series' colour, under the series,
/// and a red marker (a circle on the reference and a dashed vertical line) where the result
/// first leaves the band. References count towards the plotted range, so a reference far
/// from the result is seen, not clipped.
pub fn line_plot_with_references(
    time: &[f64],
    series: &[(&str, &[f64])],
    references: &[ReferenceLine<'_>],
    opts: &PlotOptions,
) -> Markup {
    let curves: Vec<Curve<'_>> = series
        .iter()
        .map(|&(name, values)| Curve { name, time, values })
        .collect();
    curves_plot(&curves, references, opts)
}

/// A line of its own time points: the runs a compare page overlays each have theirs.
#[derive(Debug, Clone, Copy)]
pub struct Curve<'a> {
    pub name: &'a str,
    pub time: &'a [f64],
    pub values: &'a [f64],
}

/// [`line_plot_with_references`] of curves that do not share their time points (an overlay
/// of several runs).
pub fn curves_plot(
    series: &[Curve<'_>],
    references: &[ReferenceLine<'_>],
    opts: &PlotOptions,
) -> Markup {
    let title = chart_title(opts.title.as_deref(), "Line plot");
    let references = &references[..references.len().min(MAX_SERIES)];
    let Some(layout) = plot_layout(series, references, opts) else {
        return no_data(&title, "chart chart-line");
    };
    let shown = &series[..series.len().min(MAX_SERIES)];
    let hidden = series.len() - shown.len();
    let f = &layout.frame;
    let budget =
        (MAX_POINTS_TOTAL / shown.len().max(1)).clamp(MIN_POINTS_PER_SERIES, MAX_POINTS_PER_SERIES);
    let paths: Vec<String> = shown
        .iter()
        .map(|c| {
            let points = decimate(c.time, c.values, budget);
            if opts.stepped.iter().any(|s| s == c.name) {
                series_path(f, &steps(&points))
            } else {
                series_path(f, &points)
            }
        })
        .collect();
    // Each reference in its series' colour (a reference of a series not shown: the next).
    let reference_paths: Vec<(String, &'static str)> = references
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let index = shown
                .iter()
                .position(|c| c.name == r.name)
                .unwrap_or(shown.len() + i);
            (
                series_path(f, &decimate(r.time, r.values, budget)),
                color(index),
            )
        })
        .collect();
    let markers: Vec<(f64, f64, String)> = references
        .iter()
        .filter_map(|r| {
            let t = r.first_outside.filter(|t| usable(*t))?;
            let y = value_near(r.time, r.values, t).filter(|y| usable(*y))?;
            let label = format!(
                "{} leaves the band at t = {}",
                clip(r.name, MAX_LEGEND_CHARS),
                format_value(t)
            );
            Some((f.x(t), f.y(y), label))
        })
        .collect();

    let x_label = clip(&opts.x_label, MAX_LABEL_CHARS);
    let y_label = opts.y_label.as_deref().map(|l| clip(l, MAX_LABEL_CHARS));
    let names: Vec<Cow<str>> = shown
        .iter()
        .map(|c| clip(c.name, MAX_LEGEND_CHARS))
        .collect();
    let mut aria = format!("{title}: line plot of {} series", series.len());
    if !names.is_empty() {
        aria.push_str(" (");
        aria.push_str(&names.join(", "));
        if hidden > 0 {
            let _ = write!(aria, " and {hidden} more");
        }
        aria.push(')');
    }
    if !references.is_empty() {
        let _ = write!(aria, ", with {} dashed reference(s)", references.len());
    }
    if !markers.is_empty() {
        let _ = write!(aria, "; {} leave their band", markers.len());
    }
    let _ = write!(aria, " against {x_label}");
    if let Some(y) = &y_label {
        let _ = write!(aria, ", y axis {y}");
    }

    let x_fmt = TickFormat::for_ticks(&layout.x_ticks);
    let y_fmt = TickFormat::for_ticks(&layout.y_ticks);
    let legend_top = f.bottom + MARGIN_BOTTOM + 10.0;
    let body = html! {
        (grid_and_axes(f, &layout.x_ticks, &layout.y_ticks))
        @if !reference_paths.is_empty() {
            g.reference-lines fill="none" stroke-width="2" stroke-dasharray="6 4" stroke-opacity="0.8" {
                @for (i, (d, stroke)) in reference_paths.iter().enumerate() {
                    path class=(format!("reference reference-{i}")) d=(d) stroke=(*stroke) {}
                }
            }
        }
        g.series-lines fill="none" stroke-width="1.5" stroke-linejoin="round" stroke-linecap="round" {
            @for (i, d) in paths.iter().enumerate() {
                path class=(format!("series series-{i}")) d=(d) stroke=(color(i)) {}
            }
        }
        g fill=(TEXT_COLOR) font-size=(FONT_SIZE) {
            @if opts.title.is_some() {
                (heading(&title))
            }
            g.ticks.x-ticks text-anchor="middle" {
                @for &t in layout.x_ticks.iter().filter(|&&t| f.contains_x(t)) {
                    text x=(num(f.x(t))) y=(num(f.bottom + 16.0)) { (x_fmt.format(t)) }
                }
            }
            g.ticks.y-ticks text-anchor="end" {
                @for &t in &layout.y_ticks {
                    text x=(num(f.left - 6.0)) y=(num(f.y(t) + 4.0)) { (y_fmt.format(t)) }
                }
            }
            text.axis-label x=(num((f.left + f.right) / 2.0)) y=(num(f.bottom + 34.0)) text-anchor="middle" {
                (x_label)
            }
            @if let Some(y) = &y_label {
                (y_axis_label(f, y))
            }
            g.legend {
                @for (i, name) in names.iter().enumerate() {
                    @let (lx, ly) = legend_slot(f, legend_top, layout.legend_columns, i);
                    line x1=(num(lx)) y1=(num(ly)) x2=(num(lx + 16.0)) y2=(num(ly))
                        stroke=(color(i)) stroke-width="2" {}
                    text x=(num(lx + 22.0)) y=(num(ly + 4.0)) { (name) }
                }
                @if hidden > 0 {
                    @let (lx, ly) = legend_slot(f, legend_top, layout.legend_columns, names.len());
                    text x=(num(lx)) y=(num(ly + 4.0)) { "+" (hidden) " more not shown" }
                }
                @if !references.is_empty() {
                    @let slot = names.len() + usize::from(hidden > 0);
                    @let (lx, ly) = legend_slot(f, legend_top, layout.legend_columns, slot);
                    line x1=(num(lx)) y1=(num(ly)) x2=(num(lx + 16.0)) y2=(num(ly))
                        stroke=(TEXT_COLOR) stroke-width="2" stroke-dasharray="4 3" {}
                    text x=(num(lx + 22.0)) y=(num(ly + 4.0)) { "reference" }
                }
            }
        }
        @if !markers.is_empty() {
            g.outside-markers stroke=(OUTSIDE_COLOR) fill=(OUTSIDE_COLOR) {
                @for (x, y, label) in &markers {
                    g.outside-marker {
                        title { (label) }
                        line x1=(num(*x)) y1=(num(f.top)) x2=(num(*x)) y2=(num(f.bottom))
                            stroke-width="1" stroke-dasharray="3 3" {}
                        circle cx=(num(*x)) cy=(num(*y)) r="5" fill-opacity="0.85" {}
                    }
                }
            }
        }
    };
    svg(&title, &aria, "chart chart-line", body)
}

/// Background of a standalone SVG (the dashboard's), as the charts' text is light.
const PAGE_COLOR: &str = "#0f1720";

/// Charts stacked into one standalone SVG document, each below the previous (the plot's SVG
/// export: one panel per unit). Each chart is nested as it is drawn inline, given its place
/// and height, which inline it takes from the page's width.
pub fn stacked_document(charts: &[Markup]) -> String {
    let total = HEIGHT * charts.len().max(1) as f64;
    let mut doc = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {total}" width="{WIDTH}" height="{total}"><rect width="100%" height="100%" fill="{PAGE_COLOR}"/>"#
    );
    for (i, chart) in charts.iter().enumerate() {
        let placed = format!(r#"<svg x="0" y="{}" height="{HEIGHT}" "#, HEIGHT * i as f64);
        doc.push_str(&chart.0.replacen("<svg ", &placed, 1));
    }
    doc.push_str("</svg>");
    doc
}

/// A bar chart of `(label, value)` pairs in order, e.g. credits spent per day, as an inline
/// SVG. Each bar has a `<title>` child with its label and value (shown on hover). Bars with
/// a non-finite value are left out (their label stays); beyond 366 bars only the last ones
/// are drawn.
pub fn bar_chart(bars: &[(String, f64)], opts: &BarOptions) -> Markup {
    let title = chart_title(opts.title.as_deref(), "Bar chart");
    let shown = &bars[bars.len().saturating_sub(MAX_BARS)..];
    let mut lo = 0.0_f64;
    let mut hi = 0.0_f64;
    let mut any = false;
    for &(_, v) in shown {
        if usable(v) {
            lo = lo.min(v);
            hi = hi.max(v);
            any = true;
        }
    }
    if !any {
        return no_data(&title, "chart chart-bar");
    }
    if lo == hi {
        hi = 1.0; // all zero: a 0..1 axis, not one centred on zero
    }
    let y_ticks = if opts.whole {
        whole_ticks(lo, hi)
    } else {
        nice_ticks(lo, hi)
    };
    let top = if opts.title.is_some() {
        MARGIN_TOP_TITLED
    } else {
        MARGIN_TOP
    };
    let f = Frame {
        left: MARGIN_LEFT,
        right: WIDTH - MARGIN_RIGHT,
        top,
        bottom: HEIGHT - 28.0,
        x0: 0.0,
        x1: shown.len() as f64,
        y0: y_ticks[0],
        y1: y_ticks[y_ticks.len() - 1],
    };
    let slot = (f.right - f.left) / shown.len() as f64;
    let bar_width = slot * 0.7;
    let longest = shown
        .iter()
        .map(|(l, _)| l.chars().count().min(MAX_BAR_LABEL_CHARS))
        .max()
        .unwrap_or(0);
    // Show every `label_every`-th label so neighbours never overlap (~6.5 units per char).
    let label_every = (((longest as f64 * 6.5 + 8.0) / slot).ceil() as usize).max(1);
    let zero = f.y(0.0);
    let y_fmt = TickFormat::for_ticks(&y_ticks);
    let y_label = opts.y_label.as_deref().map(|l| clip(l, MAX_LABEL_CHARS));

    let mut aria = format!("{title}: bar chart of {} values", bars.len());
    if shown.len() < bars.len() {
        let _ = write!(aria, " (last {} shown)", shown.len());
    }
    if let Some(y) = &y_label {
        let _ = write!(aria, ", y axis {y}");
    }

    let body = html! {
        (grid_and_axes(&f, &[], &y_ticks))
        line.axis.baseline x1=(num(f.left)) y1=(num(zero)) x2=(num(f.right)) y2=(num(zero))
            stroke=(AXIS_COLOR) {}
        g.bars fill=(BAR_COLOR) {
            @for (i, (label, v)) in shown.iter().enumerate() {
                @if usable(*v) {
                    @let y = f.y(*v);
                    rect.bar x=(num(f.left + slot * i as f64 + (slot - bar_width) / 2.0))
                        y=(num(y.min(zero))) width=(num(bar_width)) height=(num((y - zero).abs())) {
                        title { (clip(label, MAX_LABEL_CHARS)) ": " (format_value(*v)) }
                    }
                }
            }
        }
        g fill=(TEXT_COLOR) font-size=(FONT_SIZE) {
            @if opts.title.is_some() {
                (heading(&title))
            }
            g.ticks.x-ticks text-anchor="middle" {
                @for (i, (label, _)) in shown.iter().enumerate() {
                    // Count from the right so the most recent bar is always labelled.
                    @if (shown.len() - 1 - i).is_multiple_of(label_every) {
                        text x=(num(f.left + slot * (i as f64 + 0.5))) y=(num(f.bottom + 16.0)) {
                            (clip(label, MAX_BAR_LABEL_CHARS))
                        }
                    }
                }
            }
            g.ticks.y-ticks text-anchor="end" {
                @for &t in &y_ticks {
                    text x=(num(f.left - 6.0)) y=(num(f.y(t) + 4.0)) { (y_fmt.format(t)) }
                }
            }
            @if let Some(y) = &y_label {
                (y_axis_label(&f, y))
            }
        }
    };
    svg(&title, &aria, "chart chart-bar", body)
}

/// Options for [`scatter_plot`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScatterOptions {
    /// Label under the x axis (a parameter, with its unit).
    pub x_label: String,
    /// Label along the y axis (a KPI, with its unit).
    pub y_label: String,
    /// Heading drawn above the plot (and used as the SVG `<title>`).
    pub title: Option<String>,
}

/// Radius of a scatter point, in viewBox units.
const POINT_RADIUS: f64 = 3.5;

/// A scatter plot of `(x, y)` points (a KPI against a parameter, one point a case), as an
/// inline SVG. Points that cannot be drawn (NaN, infinite, beyond ±1e300) are left out; the
/// caller counts them in its caption. Both ranges are widened to their outer nice ticks so
/// the grid frames every point.
pub fn scatter_plot(points: &[(f64, f64)], opts: &ScatterOptions) -> Markup {
    let title = chart_title(opts.title.as_deref(), "Scatter plot");
    let drawn: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|&(x, y)| usable(x) && usable(y))
        .collect();
    let Some((x_lo, x_hi, y_lo, y_hi)) = drawn.iter().fold(None, |r, &(x, y)| {
        let (a, b, c, d) = r.unwrap_or((x, x, y, y));
        Some((a.min(x), b.max(x), c.min(y), d.max(y)))
    }) else {
        return no_data(&title, "chart chart-scatter");
    };
    let x_ticks = nice_ticks(x_lo, x_hi);
    let y_ticks = nice_ticks(y_lo, y_hi);
    let top = if opts.title.is_some() {
        MARGIN_TOP_TITLED
    } else {
        MARGIN_TOP
    };
    let f = Frame {
        left: MARGIN_LEFT,
        right: WIDTH - MARGIN_RIGHT,
        top,
        bottom: HEIGHT - MARGIN_BOTTOM,
        x0: x_ticks[0],
        x1: x_ticks[x_ticks.len() - 1],
        y0: y_ticks[0],
        y1: y_ticks[y_ticks.len() - 1],
    };
    let x_label = clip(&opts.x_label, MAX_LABEL_CHARS);
    let y_label = clip(&opts.y_label, MAX_LABEL_CHARS);
    let aria = format!(
        "{title}: scatter plot of {} points, {y_label} against {x_label}",
        drawn.len()
    );
    let x_fmt = TickFormat::for_ticks(&x_ticks);
    let y_fmt = TickFormat::for_ticks(&y_ticks);
    let body = html! {
        (grid_and_axes(&f, &x_ticks, &y_ticks))
        g.points fill=(color(0)) fill-opacity="0.8" {
            @for &(x, y) in &drawn {
                circle cx=(num(f.x(x))) cy=(num(f.y(y))) r=(num(POINT_RADIUS)) {}
            }
        }
        g fill=(TEXT_COLOR) font-size=(FONT_SIZE) {
            @if opts.title.is_some() {
                (heading(&title))
            }
            g.ticks.x-ticks text-anchor="middle" {
                @for &t in &x_ticks {
                    text x=(num(f.x(t))) y=(num(f.bottom + 16.0)) { (x_fmt.format(t)) }
                }
            }
            g.ticks.y-ticks text-anchor="end" {
                @for &t in &y_ticks {
                    text x=(num(f.left - 6.0)) y=(num(f.y(t) + 4.0)) { (y_fmt.format(t)) }
                }
            }
            text.axis-label x=(num((f.left + f.right) / 2.0)) y=(num(f.bottom + 34.0)) text-anchor="middle" {
                (x_label)
            }
            (y_axis_label(&f, &y_label))
        }
    };
    svg(&title, &aria, "chart chart-scatter", body)
}

/// Where the plot area sits in the drawing and which data ranges it shows.
#[derive(Debug, Clone, Copy)]
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        scale(v, self.x0, self.x1, self.left, self.right)
    }

    /// SVG y grows downwards, so the data range maps to bottom..top.
    fn y(&self, v: f64) -> f64 {
        scale(v, self.y0, self.y1, self.bottom, self.top)
    }

    /// Whether an x tick lies in the shown range (x ticks are not widened to the data).
    fn contains_x(&self, t: f64) -> bool {
        let eps = (self.x1 - self.x0).abs() * 1e-9;
        t >= self.x0 - eps && t <= self.x1 + eps
    }
}

/// The geometry of a line plot, computed from the data alone (kept apart from rendering so
/// tests can locate where a value lands).
struct PlotLayout {
    frame: Frame,
    x_ticks: Vec<f64>,
    y_ticks: Vec<f64>,
    legend_columns: usize,
}

/// Frame and ticks for a line plot, or `None` when no sample is drawable ("no data").
///
/// The y range is widened to the outer nice ticks so grid lines frame the data; the x range
/// is the data's own (time usually starts and ends on round values anyway), with only the
/// ticks inside it drawn.
fn plot_layout(
    series: &[Curve<'_>],
    references: &[ReferenceLine<'_>],
    opts: &PlotOptions,
) -> Option<PlotLayout> {
    let shown = &series[..series.len().min(MAX_SERIES)];
    let (mut x_lo, mut x_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y_lo, mut y_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let curves = shown
        .iter()
        .map(|c| (c.time, c.values))
        .chain(references.iter().map(|r| (r.time, r.values)));
    for (time, ys) in curves {
        for (&x, &y) in time.iter().zip(ys.iter()) {
            if usable(x) && usable(y) {
                x_lo = x_lo.min(x);
                x_hi = x_hi.max(x);
                y_lo = y_lo.min(y);
                y_hi = y_hi.max(y);
            }
        }
    }
    if x_lo > x_hi {
        return None;
    }
    let (x0, x1) = pad_range(x_lo, x_hi);
    let x_ticks = nice_ticks(x0, x1);
    let y_ticks = nice_ticks(y_lo, y_hi);

    let top = if opts.title.is_some() {
        MARGIN_TOP_TITLED
    } else {
        MARGIN_TOP
    };
    let (left, right) = (MARGIN_LEFT, WIDTH - MARGIN_RIGHT);
    let legend_columns = (((right - left) / LEGEND_COLUMN).floor() as usize).max(1);
    let legend_items =
        shown.len() + usize::from(series.len() > shown.len()) + usize::from(!references.is_empty());
    let legend_rows = legend_items.div_ceil(legend_columns);
    let frame = Frame {
        left,
        right,
        top,
        bottom: HEIGHT - MARGIN_BOTTOM - LEGEND_ROW * legend_rows as f64 - 8.0,
        x0,
        x1,
        y0: y_ticks[0],
        y1: y_ticks[y_ticks.len() - 1],
    };
    Some(PlotLayout {
        frame,
        x_ticks,
        y_ticks,
        legend_columns,
    })
}

/// The value of a curve at the sample nearest `t` (its time points non-decreasing).
fn value_near(time: &[f64], values: &[f64], t: f64) -> Option<f64> {
    let n = time.len().min(values.len());
    let i = time[..n].partition_point(|&x| x < t);
    let nearest = [i.checked_sub(1), (i < n).then_some(i)]
        .into_iter()
        .flatten()
        .min_by(|&a, &b| (time[a] - t).abs().total_cmp(&(time[b] - t).abs()))?;
    Some(values[nearest])
}

/// Maps `v` from the data range `d0..d1` to the drawing range `r0..r1` (linear). A zero-width
/// data range maps to the middle instead of dividing by zero.
fn scale(v: f64, d0: f64, d1: f64, r0: f64, r1: f64) -> f64 {
    if d1 == d0 {
        (r0 + r1) / 2.0
    } else {
        r0 + (v - d0) / (d1 - d0) * (r1 - r0)
    }
}

/// Whether a value can be drawn: finite and small enough that differences do not overflow.
fn usable(v: f64) -> bool {
    v.is_finite() && v.abs() <= MAX_ABS
}

/// Widens an empty or near-empty range (a constant series, a single point) so it has room
/// to draw: ±10% around the value, or -1..1 around zero.
fn pad_range(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    let mid = (lo + hi) / 2.0;
    if hi - lo > mid.abs() * 1e-12 {
        (lo, hi)
    } else if mid == 0.0 {
        (-1.0, 1.0)
    } else {
        let d = mid.abs() * 0.1;
        (mid - d, mid + d)
    }
}

/// "Nice" tick values covering `lo..=hi`: multiples of a step of 1, 2 or 5 × 10^k, 4 to 8 of
/// them, the first ≤ `lo` and the last ≥ `hi`.
///
/// Round steps make the labels short and the grid easy to read. Among the steps that give
/// 4–8 ticks, the one that wastes the least of the axis on empty space wins, with a slight
/// preference for about 6 ticks. A degenerate range is padded first; if no step fits (only
/// for absurd ranges) the two ends are returned.
/// Ticks for counts: the nice ticks when their step is whole, else every whole number from
/// below `lo` to above `hi` (a step under 1 means the span is at most a few units).
fn whole_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let ticks = nice_ticks(lo, hi);
    if ticks.iter().all(|t| t.fract() == 0.0) {
        return ticks;
    }
    let (lo, hi) = (lo.floor() as i64, hi.ceil().max(lo.floor() + 1.0) as i64);
    (lo..=hi).map(|t| t as f64).collect()
}

fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (lo, hi) = pad_range(lo, hi);
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 {
        return vec![lo, hi];
    }
    let base = span.log10().floor() as i32;
    // (score, index of first tick, step, count)
    let mut best: Option<(f64, f64, f64, usize)> = None;
    for k in (base - 2)..=(base + 1) {
        for m in [1.0, 2.0, 5.0] {
            let step = m * 10f64.powi(k);
            if !(step.is_finite() && step > 0.0) {
                continue;
            }
            // The epsilons absorb rounding noise (0.30000000000000004 / 0.1 is not 3).
            let first = (lo / step + 1e-9).floor();
            let last = (hi / step - 1e-9).ceil();
            let n = last - first + 1.0;
            if !(4.0..=8.0).contains(&n) {
                continue;
            }
            let count = n as usize;
            let waste = (last - first) * step / span;
            let score = waste + 0.05 * (count as f64 - 6.0).abs();
            if best.is_none_or(|b| score < b.0) {
                best = Some((score, first, step, count));
            }
        }
    }
    match best {
        Some((_, first, step, count)) => (0..count)
            .map(|i| {
                let t = (first + i as f64) * step;
                if t.abs() < step * 1e-9 { 0.0 } else { t }
            })
            .collect(),
        None => vec![lo, hi],
    }
}

/// How one axis writes its tick labels. Chosen once per axis (from the step and the largest
/// value) so all labels on an axis look alike, e.g. never `0.0015` next to `2e-3`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum TickFormat {
    /// `0`, `0.5`, `9.81`: as many decimals as the step needs.
    Plain { decimals: usize },
    /// `2k`, `1.5M`: values divided by `unit`, for steps of 1000 and up.
    Suffix {
        unit: f64,
        suffix: &'static str,
        decimals: usize,
    },
    /// `1.5e-3`: tiny or huge values, mantissa digits as the step needs.
    Scientific { step_exp: i32 },
}

impl TickFormat {
    fn for_ticks(ticks: &[f64]) -> TickFormat {
        let step = if ticks.len() >= 2 {
            (ticks[1] - ticks[0]).abs()
        } else {
            1.0
        };
        let max_abs = ticks.iter().fold(0.0_f64, |m, t| m.max(t.abs()));
        Self::choose(step, max_abs)
    }

    fn choose(step: f64, max_abs: f64) -> TickFormat {
        let step = if step.is_finite() && step > 0.0 {
            step
        } else {
            1.0
        };
        let step_exp = (step.log10() + 1e-9).floor() as i32;
        if max_abs >= 1e15 || (step < 1e-3 && max_abs < 1.0) {
            TickFormat::Scientific { step_exp }
        } else if step >= 1000.0 {
            let (unit, suffix): (f64, &str) = if step >= 1e12 {
                (1e12, "T")
            } else if step >= 1e9 {
                (1e9, "G")
            } else if step >= 1e6 {
                (1e6, "M")
            } else {
                (1e3, "k")
            };
            let decimals = (unit.log10().round() as i32 - step_exp).max(0) as usize;
            TickFormat::Suffix {
                unit,
                suffix,
                decimals,
            }
        } else {
            TickFormat::Plain {
                decimals: (-step_exp).max(0) as usize,
            }
        }
    }

    fn format(self, v: f64) -> String {
        format_tick(v, self)
    }
}

/// A compact tick label: `0`, `0.5`, `12k`, `1.5e-3`. Trailing zeros are dropped and zero is
/// always plain `0` (never `-0` or `0e0`).
fn format_tick(v: f64, fmt: TickFormat) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    let s = match fmt {
        TickFormat::Plain { decimals } => trim_zeros(&format!("{v:.decimals$}")).to_string(),
        TickFormat::Suffix {
            unit,
            suffix,
            decimals,
        } => format!(
            "{}{suffix}",
            trim_zeros(&format!("{:.decimals$}", v / unit))
        ),
        TickFormat::Scientific { step_exp } => {
            let v_exp = v.abs().log10().floor() as i32;
            let decimals = (v_exp - step_exp).clamp(0, 6) as usize;
            let s = format!("{v:.decimals$e}");
            match s.split_once('e') {
                Some((mantissa, exp)) => format!("{}e{exp}", trim_zeros(mantissa)),
                None => s,
            }
        }
    };
    if s == "-0" { "0".to_string() } else { s }
}

/// A value for a tooltip: exact enough to read off (up to 3 decimals), scientific when tiny
/// or huge.
fn format_value(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e15).contains(&a) {
        format!("{v:e}")
    } else {
        let s = trim_zeros(&format!("{v:.3}")).to_string();
        if s == "-0" { "0".to_string() } else { s }
    }
}

/// Drops trailing zeros after a decimal point, and the point itself if nothing follows.
fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A coordinate with at most two decimals and no trailing zeros (`12.5`, `300`), to keep the
/// markup small; a hundredth of a viewBox unit is far below a screen pixel.
fn num(v: f64) -> String {
    let mut s = String::with_capacity(8);
    push_num(&mut s, v);
    s
}

/// [`num`], appended to a path being built (avoids one allocation per point).
fn push_num(out: &mut String, v: f64) {
    let start = out.len();
    let _ = write!(out, "{v:.2}");
    while out.len() > start && out.ends_with('0') {
        out.pop();
    }
    if out.ends_with('.') {
        out.pop();
    }
    if &out[start..] == "-0" {
        out.truncate(start);
        out.push('0');
    }
}

/// A series reduced to at most about `max_points` drawable points; `None` marks a gap (where
/// the line must break because of a NaN/inf sample).
///
/// Short series pass through unchanged. Long ones are cut into `max_points / 2` buckets of
/// consecutive samples and each bucket keeps its lowest and highest sample, in their original
/// order: at plot resolution a bucket is about one pixel wide, so the drawn envelope is the
/// same and peaks are never lost (plain striding would drop them). A bucket with a gap keeps
/// the min/max before its first gap, the gap, and the min/max after it (at most 4 points).
fn decimate(time: &[f64], ys: &[f64], max_points: usize) -> Vec<Option<(f64, f64)>> {
    let n = time.len().min(ys.len());
    let point = |i: usize| {
        let (x, y) = (time[i], ys[i]);
        (usable(x) && usable(y)).then_some((x, y))
    };
    let mut out: Vec<Option<(f64, f64)>> = Vec::new();
    let push = |out: &mut Vec<Option<(f64, f64)>>, p: Option<(f64, f64)>| {
        // No leading gap and no two gaps in a row: neither changes the drawing.
        if p.is_some() || out.last().is_some_and(Option::is_some) {
            out.push(p);
        }
    };
    if n <= max_points.max(2) {
        for i in 0..n {
            push(&mut out, point(i));
        }
        return out;
    }
    let buckets = (max_points / 2).max(1);
    out.reserve(buckets * 2 + 2);
    // Lowest and highest sample of a run, as indices.
    let flush = |out: &mut Vec<Option<(f64, f64)>>, run: Option<(usize, usize)>| {
        if let Some((lo, hi)) = run {
            let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
            out.push(point(a));
            if b != a {
                out.push(point(b));
            }
        }
    };
    for b in 0..buckets {
        let (start, end) = (b * n / buckets, (b + 1) * n / buckets);
        let mut run: Option<(usize, usize)> = None;
        let mut broke = false;
        for i in start..end {
            match point(i) {
                Some((_, y)) => {
                    run = Some(match run {
                        None => (i, i),
                        Some((lo, hi)) => (
                            if y < ys[lo] { i } else { lo },
                            if y > ys[hi] { i } else { hi },
                        ),
                    });
                }
                None if !broke => {
                    flush(&mut out, run.take());
                    push(&mut out, None);
                    broke = true;
                }
                None => {}
            }
        }
        flush(&mut out, run);
    }
    out
}

/// The `d` of a series `<path>`: `M` starts a segment (the first point and after each gap),
/// `L` continues it. Points that round to the previous one are skipped. A segment of a
/// single point gets `h0`, which draws as a dot with round line caps, so isolated samples
/// stay visible.
/// Points of a step line through `points`: each value held until the next sample's time.
fn steps(points: &[Option<(f64, f64)>]) -> Vec<Option<(f64, f64)>> {
    let mut out = Vec::with_capacity(points.len() * 2);
    for (i, p) in points.iter().enumerate() {
        if let (Some((x, _)), Some(Some((_, y_before)))) = (p, i.checked_sub(1).map(|j| points[j]))
        {
            out.push(Some((*x, y_before)));
        }
        out.push(*p);
    }
    out
}

fn series_path(f: &Frame, points: &[Option<(f64, f64)>]) -> String {
    let mut d = String::with_capacity(points.len() * 14);
    let mut prev: Option<(i64, i64)> = None;
    let mut seg_len = 0usize;
    for p in points {
        match *p {
            None => {
                if seg_len == 1 {
                    d.push_str("h0");
                }
                prev = None;
                seg_len = 0;
            }
            Some((x, y)) => {
                let (px, py) = (f.x(x), f.y(y));
                let key = ((px * 100.0).round() as i64, (py * 100.0).round() as i64);
                if prev == Some(key) {
                    continue;
                }
                d.push(if prev.is_none() { 'M' } else { 'L' });
                push_num(&mut d, px);
                d.push(',');
                push_num(&mut d, py);
                prev = Some(key);
                seg_len += 1;
            }
        }
    }
    if seg_len == 1 {
        d.push_str("h0");
    }
    d
}

/// Horizontal grid lines at the y ticks, vertical ones at the x ticks inside the frame, and
/// the two axis lines.
fn grid_and_axes(f: &Frame, x_ticks: &[f64], y_ticks: &[f64]) -> Markup {
    html! {
        g.grid stroke=(GRID_COLOR) stroke-width="1" {
            @for &t in y_ticks {
                line x1=(num(f.left)) y1=(num(f.y(t))) x2=(num(f.right)) y2=(num(f.y(t))) {}
            }
            @for &t in x_ticks.iter().filter(|&&t| f.contains_x(t)) {
                line x1=(num(f.x(t))) y1=(num(f.top)) x2=(num(f.x(t))) y2=(num(f.bottom)) {}
            }
        }
        g.axis stroke=(AXIS_COLOR) stroke-width="1" {
            line x1=(num(f.left)) y1=(num(f.bottom)) x2=(num(f.right)) y2=(num(f.bottom)) {}
            line x1=(num(f.left)) y1=(num(f.top)) x2=(num(f.left)) y2=(num(f.bottom)) {}
        }
    }
}

/// The y axis label, rotated to run up the left edge.
fn y_axis_label(f: &Frame, label: &str) -> Markup {
    let mid = (f.top + f.bottom) / 2.0;
    html! {
        text.axis-label transform="rotate(-90)" x=(num(-mid)) y="14" text-anchor="middle" {
            (label)
        }
    }
}

/// The visible heading above the plot.
fn heading(title: &str) -> Markup {
    html! {
        text.chart-title x=(num(WIDTH / 2.0)) y="22" text-anchor="middle" font-size="14"
            font-weight="600" { (title) }
    }
}

/// Top-left of legend entry `i`: entries fill rows left to right under the x axis label.
fn legend_slot(f: &Frame, top: f64, columns: usize, i: usize) -> (f64, f64) {
    let (row, col) = (i / columns, i % columns);
    (
        f.left + col as f64 * LEGEND_COLUMN,
        top + row as f64 * LEGEND_ROW,
    )
}

fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// The chart's name for `<title>` and `aria-label`: the user's title (clipped) or a default.
fn chart_title<'a>(title: Option<&'a str>, default: &'static str) -> Cow<'a, str> {
    match title {
        Some(t) if !t.trim().is_empty() => clip(t, MAX_LABEL_CHARS),
        _ => Cow::Borrowed(default),
    }
}

/// User text cut to `max` characters (with "…"), so it cannot overflow the layout or bloat
/// the markup. Escaping is still maud's job.
fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some(_) => {
            let cut = s.char_indices().nth(max - 1).map_or(s.len(), |(i, _)| i);
            Cow::Owned(format!("{}…", &s[..cut]))
        }
    }
}

/// The outer `<svg>`, with the accessibility attributes every chart needs.
fn svg(title: &str, aria: &str, class: &str, body: Markup) -> Markup {
    html! {
        svg class=(class) xmlns="http://www.w3.org/2000/svg" viewBox=(VIEW_BOX) width="100%"
            role="img" aria-label=(aria) {
            title { (title) }
            (body)
        }
    }
}

/// A chart that says "no data", same size as a real one so the page does not jump.
fn no_data(title: &str, class: &str) -> Markup {
    let aria = format!("{title}: no data");
    let body = html! {
        text.no-data x=(num(WIDTH / 2.0)) y=(num(HEIGHT / 2.0)) text-anchor="middle"
            fill=(TEXT_COLOR) font-size="14" { "no data" }
    };
    svg(title, &aria, &format!("{class} chart-empty"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scatter_plot_draws_each_usable_point_inside_its_frame() {
        let points = [
            (0.5, 1.0),
            (0.7, 2.0),
            (0.9, 4.0),
            (f64::NAN, 1.0),
            (1.0, f64::INFINITY),
        ];
        let opts = ScatterOptions {
            x_label: "e".into(),
            y_label: "max(h) [m]".into(),
            title: Some("max(h) against e".into()),
        };
        let svg = scatter_plot(&points, &opts).into_string();
        assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
        assert!(
            svg.contains("scatter plot of 3 points, max(h) [m] against e"),
            "{svg}"
        );
        assert!(
            svg.contains(">max(h) [m]</text>") && svg.contains(">e</text>"),
            "{svg}"
        );
        for c in svg.split("<circle").skip(1) {
            let attr = |name: &str| -> f64 {
                let at = c.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                c[at..].split('"').next().unwrap().parse().unwrap()
            };
            assert!((MARGIN_LEFT..=WIDTH - MARGIN_RIGHT).contains(&attr("cx")));
            assert!((MARGIN_TOP_TITLED..=HEIGHT - MARGIN_BOTTOM).contains(&attr("cy")));
        }
        let empty = scatter_plot(&[(f64::NAN, 0.0)], &opts).into_string();
        assert!(empty.contains("no data"), "{empty}");
    }

    /// The step between ticks, checked to be 1, 2 or 5 × 10^k.
    fn nice_step(ticks: &[f64]) -> f64 {
        let step = ticks[1] - ticks[0];
        let exp = step.log10().floor();
        let m = step / 10f64.powf(exp);
        assert!(
            [1.0, 2.0, 5.0, 10.0].iter().any(|n| (m - n).abs() < 1e-6),
            "step {step} is not 1/2/5×10^k ({ticks:?})"
        );
        for w in ticks.windows(2) {
            assert!(((w[1] - w[0]) - step).abs() < step * 1e-6, "{ticks:?}");
        }
        step
    }

    fn check_ticks(lo: f64, hi: f64, want_step: f64) {
        let t = nice_ticks(lo, hi);
        assert!((4..=8).contains(&t.len()), "[{lo},{hi}] → {t:?}");
        let step = nice_step(&t);
        assert!(
            (step - want_step).abs() < want_step * 1e-9,
            "[{lo},{hi}] → {t:?}"
        );
        assert!(t[0] <= lo + step * 1e-6, "[{lo},{hi}] → {t:?}");
        assert!(t[t.len() - 1] >= hi - step * 1e-6, "[{lo},{hi}] → {t:?}");
    }

    #[test]
    fn counts_are_ticked_at_whole_numbers_only() {
        assert_eq!(whole_ticks(0.0, 1.0), [0.0, 1.0]);
        assert_eq!(whole_ticks(0.0, 3.0), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(whole_ticks(0.0, 100.0), nice_ticks(0.0, 100.0));
        for hi in 1..60 {
            let ticks = whole_ticks(0.0, hi as f64);
            assert!(ticks.iter().all(|t| t.fract() == 0.0), "{hi}: {ticks:?}");
            assert!(*ticks.last().unwrap() >= hi as f64, "{hi}: {ticks:?}");
        }
        let svg = bar_chart(
            &[("11-26".into(), 0.0), ("11-27".into(), 1.0)],
            &BarOptions {
                y_label: Some("credits".into()),
                title: None,
                whole: true,
            },
        )
        .into_string();
        assert!(!svg.contains(">0.2<") && !svg.contains(">0.5<"), "{svg}");
    }

    #[test]
    fn nice_ticks_steps_and_coverage() {
        check_ticks(0.0, 1.0, 0.2);
        check_ticks(0.0, 9.81, 2.0);
        check_ticks(-2.1, 2.1, 1.0);
        check_ticks(1e-6, 3e-6, 5e-7);
        check_ticks(0.0, 12345.0, 2000.0);
        assert_eq!(
            nice_ticks(0.0, 1.0),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        // Assorted ranges: always nice, 4–8 ticks, covering.
        for (lo, hi) in [
            (0.0, 0.3),
            (-1e9, 3e9),
            (273.15, 373.15),
            (-0.004, -0.001),
            (99.9, 100.1),
            (1.0, 1.0),
            (0.0, 0.0),
            (-5.0, -5.0),
            (1e-300, 2e-300),
        ] {
            let t = nice_ticks(lo, hi);
            assert!((4..=8).contains(&t.len()), "[{lo},{hi}] → {t:?}");
            let step = nice_step(&t);
            assert!(t[0] <= lo + step * 1e-6 && t[t.len() - 1] >= hi - step * 1e-6);
        }
    }

    #[test]
    fn tick_labels_are_compact() {
        let labels = |lo, hi| {
            let t = nice_ticks(lo, hi);
            let f = TickFormat::for_ticks(&t);
            t.iter().map(|&v| f.format(v)).collect::<Vec<_>>()
        };
        assert_eq!(labels(0.0, 1.0), ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        assert_eq!(labels(0.0, 9.81), ["0", "2", "4", "6", "8", "10"]);
        assert_eq!(labels(-2.1, 2.1), ["-3", "-2", "-1", "0", "1", "2", "3"]);
        assert_eq!(
            labels(1e-6, 3e-6),
            ["1e-6", "1.5e-6", "2e-6", "2.5e-6", "3e-6"]
        );
        assert_eq!(
            labels(0.0, 12345.0),
            ["0", "2k", "4k", "6k", "8k", "10k", "12k", "14k"]
        );
        assert_eq!(
            labels(0.0, 0.0021),
            ["0", "5e-4", "1e-3", "1.5e-3", "2e-3", "2.5e-3"]
        );
        assert_eq!(format_tick(-0.0, TickFormat::Plain { decimals: 1 }), "0");
        assert_eq!(format_value(12.5), "12.5");
        assert_eq!(format_value(3.0), "3");
        assert_eq!(num(-0.001), "0");
        assert_eq!(num(300.0), "300");
        assert_eq!(num(12.345), "12.35");
    }

    fn count(hay: &str, needle: &str) -> usize {
        hay.matches(needle).count()
    }

    /// The `d` attribute of each series path, in order.
    fn path_ds(svg: &str) -> Vec<&str> {
        svg.split("<path ")
            .skip(1)
            .map(|p| {
                let start = p.find(" d=\"").expect("path has d") + 4;
                let len = p[start..].find('"').unwrap();
                &p[start..start + len]
            })
            .collect()
    }

    #[test]
    fn references_are_dashed_in_their_series_colour_with_a_marker_where_they_leave() {
        let t: Vec<f64> = (0..=10).map(f64::from).collect();
        let x: Vec<f64> = t.iter().map(|v| v * 2.0).collect();
        let rt = [0.0, 5.0, 10.0];
        let rx = [0.0, 10.0, 30.0];
        let references = [ReferenceLine {
            name: "x",
            time: &rt,
            values: &rx,
            first_outside: Some(10.0),
        }];
        let opts = PlotOptions::default();
        let svg = line_plot_with_references(&t, &[("x", &x)], &references, &opts).into_string();
        assert_eq!(count(&svg, "class=\"reference reference-0\""), 1, "{svg}");
        assert!(svg.contains("stroke-dasharray=\"6 4\""), "{svg}");
        // The reference is drawn in x's colour, and its 30 widens the range beyond x's 20.
        let curve = Curve {
            name: "x",
            time: &t,
            values: &x,
        };
        let layout = plot_layout(&[curve], &references, &opts).unwrap();
        assert!(layout.frame.y1 >= 30.0);
        let point = format!(
            "{},{}",
            num(layout.frame.x(10.0)),
            num(layout.frame.y(30.0))
        );
        assert!(
            svg.contains(&format!("cx=\"{}\"", num(layout.frame.x(10.0)))),
            "{svg}"
        );
        assert!(
            svg.contains(&format!("L{point}")) || svg.contains(&point),
            "{svg}"
        );
        assert!(svg.contains("x leaves the band at t = 10"), "{svg}");
        assert!(svg.contains(">reference</text>"), "{svg}");
        // No reference: the plain plot, with no marker.
        let plain = line_plot(&t, &[("x", &x)], &opts).into_string();
        assert!(!plain.contains("reference") && !plain.contains("outside-marker"));
    }

    #[test]
    fn two_series_plot() {
        let t: Vec<f64> = (0..100).map(|i| i as f64 * 0.1).collect();
        let a: Vec<f64> = t.iter().map(|x| x.sin()).collect();
        let b: Vec<f64> = t.iter().map(|x| x.cos() * 2.0).collect();
        let opts = PlotOptions {
            y_label: Some("angle [rad]".into()),
            title: Some("Pendulum".into()),
            ..Default::default()
        };
        let svg = line_plot(&t, &[("phi", &a), ("omega", &b)], &opts).into_string();
        assert!(svg.starts_with("<svg"));
        assert_eq!(count(&svg, "<path "), 2);
        assert_eq!(count(&svg, "class=\"series series-"), 2);
        assert!(
            svg.contains("class=\"series series-0\"") && svg.contains("class=\"series series-1\"")
        );
        assert!(svg.contains(">phi</text>") && svg.contains(">omega</text>"));
        assert!(svg.contains("time [s]") && svg.contains("angle [rad]"));
        assert!(svg.contains("<title>Pendulum</title>"));
        assert!(svg.contains("role=\"img\"") && svg.contains("aria-label=\""));
        assert!(svg.contains("width=\"100%\"") && svg.contains("viewBox=\"0 0 720 360\""));
        assert!(!svg.contains("style"), "no inline styles");
        assert!(!svg.contains("<script"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        // Each series is one unbroken line of distinct points.
        for d in path_ds(&svg) {
            assert_eq!(count(d, "M"), 1, "{d}");
            assert!(count(d, "L") > 50, "{d}");
        }
        // Every element is closed explicitly: HTML parsers do not self-close SVG tags.
        assert_eq!(count(&svg, "<path "), count(&svg, "</path>"));
        assert_eq!(count(&svg, "<line "), count(&svg, "</line>"));
    }

    #[test]
    fn user_text_is_escaped() {
        let evil = "<script>alert(1)</script>";
        let t = [0.0, 1.0];
        let y = [0.0, 1.0];
        let opts = PlotOptions {
            x_label: "<b>x</b>".into(),
            y_label: Some("\"><svg onload=alert(1)>".into()),
            title: Some(evil.into()),
            stepped: vec![],
        };
        let svg = line_plot(&t, &[(evil, &y)], &opts).into_string();
        assert!(!svg.contains("<script"), "{svg}");
        assert!(!svg.contains("<b>") && !svg.contains("\"><svg onload"));
        assert!(svg.contains("&lt;script&gt;alert(1)"), "{svg}");
        let bars = bar_chart(
            &[(evil.to_string(), 1.0)],
            &BarOptions {
                y_label: Some(evil.into()),
                title: Some(evil.into()),
                whole: false,
            },
        )
        .into_string();
        assert!(!bars.contains("<script") && bars.contains("&lt;script&gt;"));
    }

    #[test]
    fn nan_breaks_the_line() {
        let t = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [0.0, 1.0, f64::NAN, 3.0, 4.0, 5.0];
        let svg = line_plot(&t, &[("y", &y)], &PlotOptions::default()).into_string();
        let ds = path_ds(&svg);
        assert_eq!(ds.len(), 1);
        assert_eq!(count(ds[0], "M"), 2, "{}", ds[0]);
        assert!(!svg.contains("NaN"));
        // Infinity in time and runs of gaps behave the same; leading gaps add nothing.
        let t = [f64::NAN, 0.0, 1.0, f64::INFINITY, 3.0, 4.0];
        let y = [1.0, 0.0, 1.0, 2.0, f64::NEG_INFINITY, 4.0];
        let svg = line_plot(&t, &[("y", &y)], &PlotOptions::default()).into_string();
        let d = path_ds(&svg)[0];
        assert_eq!(count(d, "M"), 2, "{d}");
        assert!(
            d.ends_with("h0"),
            "the lone last point is drawn as a dot: {d}"
        );
    }

    #[test]
    fn a_million_points_stay_small_and_keep_peaks() {
        let n = 1_000_000;
        let t: Vec<f64> = (0..n).map(|i| i as f64 * 1e-3).collect();
        let mut a: Vec<f64> = t.iter().map(|x| (x * 0.7).sin()).collect();
        let b: Vec<f64> = t.iter().map(|x| (x * 0.05).cos() * 3.0 + 1.0).collect();
        // One-sample spikes that plain striding would miss.
        a[123_457] = 7.25;
        a[876_543] = -4.75;
        let series: [(&str, &[f64]); 2] = [("a", &a), ("b", &b)];
        let opts = PlotOptions::default();
        let svg = line_plot(&t, &series, &opts).into_string();
        assert!(svg.len() < 300_000, "{} bytes", svg.len());
        let ds = path_ds(&svg);
        assert_eq!(ds.len(), 2);
        for d in &ds {
            assert_eq!(count(d, "M"), 1);
            assert!(count(d, "L") <= MAX_POINTS_PER_SERIES, "{}", count(d, "L"));
        }
        let curves: Vec<Curve<'_>> = series
            .iter()
            .map(|&(name, values)| Curve {
                name,
                time: &t,
                values,
            })
            .collect();
        let frame = plot_layout(&curves, &[], &opts).unwrap().frame;
        for (i, extreme) in [(123_457, 7.25), (876_543, -4.75)] {
            let point = format!("{},{}", num(frame.x(t[i])), num(frame.y(extreme)));
            assert!(ds[0].contains(&point), "spike at {point} lost");
        }
        // A path of the same data with gaps everywhere is still bounded.
        let gappy: Vec<f64> = a
            .iter()
            .enumerate()
            .map(|(i, &v)| if i % 3 == 0 { f64::NAN } else { v })
            .collect();
        let svg = line_plot(&t, &[("g", &gappy)], &opts).into_string();
        assert!(svg.len() < 300_000, "{} bytes", svg.len());
    }

    #[test]
    fn degenerate_inputs_render() {
        let opts = PlotOptions::default();
        let empty = line_plot(&[], &[], &opts).into_string();
        assert!(
            empty.contains("no data") && empty.starts_with("<svg") && empty.contains("<title>")
        );
        let no_series = line_plot(&[0.0, 1.0], &[], &opts).into_string();
        assert!(no_series.contains("no data"));
        let no_time = line_plot(&[], &[("y", &[1.0, 2.0])], &opts).into_string();
        assert!(no_time.contains("no data"));
        let all_nan = line_plot(&[0.0, 1.0], &[("y", &[f64::NAN, f64::NAN])], &opts).into_string();
        assert!(all_nan.contains("no data"));

        let single = line_plot(&[2.0], &[("y", &[5.0])], &opts).into_string();
        assert!(!single.contains("no data"));
        let d = path_ds(&single)[0];
        assert!(d.starts_with('M') && d.ends_with("h0"), "{d}");

        let constant = line_plot(&[0.0, 1.0, 2.0], &[("c", &[3.0, 3.0, 3.0])], &opts).into_string();
        let d = path_ds(&constant)[0];
        assert_eq!(count(d, "L"), 2, "{d}");
        let zeros = line_plot(&[0.0, 0.0], &[("z", &[0.0, 0.0])], &opts).into_string();
        assert!(zeros.contains("<path"));

        // Mismatched lengths, huge values, a series with no usable data next to a good one.
        let huge = line_plot(
            &[0.0, 1.0, 2.0],
            &[("h", &[-1e300, 1e300, 1e308]), ("e", &[f64::NAN; 3])],
            &opts,
        )
        .into_string();
        assert_eq!(count(&huge, "<path "), 2);
        assert!(!huge.contains("NaN") && !huge.contains("inf"), "{huge}");

        // More series than drawn: capped, and said so.
        let y = [1.0, 2.0];
        let many: Vec<(&str, &[f64])> = (0..20).map(|_| ("s", &y[..])).collect();
        let svg = line_plot(&[0.0, 1.0], &many, &opts).into_string();
        assert_eq!(count(&svg, "<path "), MAX_SERIES);
        assert!(svg.contains("+8 more not shown"));
    }

    #[test]
    fn bar_chart_per_day() {
        let bars: Vec<(String, f64)> = [3.0, 0.0, 12.5, 7.0, 1.25, 40.0, 9.0]
            .iter()
            .enumerate()
            .map(|(i, &v)| (format!("11-{}", 24 + i), v))
            .collect();
        let opts = BarOptions {
            y_label: Some("credits".into()),
            title: Some("Credits spent per day".into()),
            whole: true,
        };
        let svg = bar_chart(&bars, &opts).into_string();
        assert!(svg.starts_with("<svg") && svg.contains("role=\"img\""));
        assert_eq!(count(&svg, "<rect"), 7);
        assert_eq!(count(&svg, "<rect class=\"bar\""), 7);
        for (label, v) in &bars {
            let tip = format!("<title>{label}: {}</title>", format_value(*v));
            assert!(svg.contains(&tip), "missing {tip}");
            assert!(svg.contains(&format!(">{label}</text>")), "label {label}");
        }
        assert!(svg.contains("<title>11-28: 1.25</title>"));
        assert!(svg.contains("<title>11-30: 9</title>"));
        assert!(!svg.contains("style") && !svg.contains("<script"));
        assert!(!svg.contains("NaN"));

        let empty = bar_chart(&[], &BarOptions::default()).into_string();
        assert!(empty.contains("no data") && !empty.contains("<rect"));
        let nan = bar_chart(&[("x".into(), f64::NAN)], &BarOptions::default()).into_string();
        assert!(nan.contains("no data"));
        let zeros = bar_chart(
            &[("a".into(), 0.0), ("b".into(), 0.0)],
            &BarOptions::default(),
        )
        .into_string();
        assert_eq!(count(&zeros, "<rect"), 2);
        let negative = bar_chart(
            &[("a".into(), -2.0), ("b".into(), 5.0)],
            &BarOptions::default(),
        )
        .into_string();
        assert_eq!(count(&negative, "<rect"), 2);
        assert!(!negative.contains("height=\"-"));

        // A long history: capped, labels thinned.
        let year: Vec<(String, f64)> = (0..1000).map(|i| (format!("d{i}"), i as f64)).collect();
        let svg = bar_chart(&year, &BarOptions::default()).into_string();
        assert_eq!(count(&svg, "<rect"), MAX_BARS);
        assert!(svg.contains(">d999</text>") && !svg.contains(">d998</text>"));
        assert!(count(&svg, "</text>") < 100);
    }

    #[test]
    fn decimate_keeps_short_series_and_bounds_long_ones() {
        let t: Vec<f64> = (0..10).map(f64::from).collect();
        assert_eq!(decimate(&t, &t, 100).len(), 10);
        let t: Vec<f64> = (0..100_000).map(f64::from).collect();
        let d = decimate(&t, &t, 1000);
        assert!(d.len() <= 1000 && d.len() >= 900, "{}", d.len());
        assert_eq!(d.first(), Some(&Some((0.0, 0.0))));
        assert_eq!(d.last(), Some(&Some((99_999.0, 99_999.0))));
        assert!(d.iter().all(Option::is_some));
    }

    #[test]
    fn a_stepped_series_holds_each_value_until_the_next_sample() {
        let points = [Some((0.0, 1.0)), Some((1.0, 2.0)), None, Some((3.0, 5.0))];
        assert_eq!(
            steps(&points),
            [
                Some((0.0, 1.0)),
                Some((1.0, 1.0)),
                Some((1.0, 2.0)),
                None,
                Some((3.0, 5.0))
            ]
        );
        let t = [0.0, 1.0, 2.0];
        let opts = PlotOptions {
            stepped: vec!["n".into()],
            ..PlotOptions::default()
        };
        let stepped = line_plot(&t, &[("n", &[0.0, 1.0, 2.0])], &opts).into_string();
        let ramp = line_plot(&t, &[("n", &[0.0, 1.0, 2.0])], &PlotOptions::default()).into_string();
        let lines = |svg: &str| path_ds(svg)[0].matches('L').count();
        assert_eq!((lines(&ramp), lines(&stepped)), (2, 4));
    }
}
