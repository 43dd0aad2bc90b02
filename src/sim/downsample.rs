//! Which rows of a long result a plot keeps, so a million-row run arrives as a few thousand
//! points that still show every peak.
//!
//! The time range is cut into `width` equal columns (one per pixel the plot is drawn in). In
//! each column, every series keeps its first, lowest, highest and last sample; a row is kept
//! when any series keeps it, so all series of one plot share their time points and every
//! kept value is a real sample (never an average). Samples that are not numbers (NaN, ±∞)
//! keep their first row in the column too, so the plot shows the gap they make. A result
//! with at most [`EXACT_FACTOR`] × `width` rows is kept whole: it is small already.

use std::ops::Range;

/// A result with at most this many rows per pixel column is not downsampled.
pub const EXACT_FACTOR: usize = 4;

/// The rows a plot keeps, built one series at a time ([`RowPicker::mark`]).
#[derive(Clone, Debug)]
pub struct RowPicker {
    /// Rows of each non-empty pixel column, in time order; empty when every row is kept.
    columns: Vec<Range<usize>>,
    keep: Vec<bool>,
    exact: bool,
}

impl RowPicker {
    /// A picker for a result with these time points (non-decreasing) drawn `width` pixels wide.
    pub fn new(time: &[f64], width: usize) -> RowPicker {
        let width = width.max(1);
        let exact = time.len() <= width.saturating_mul(EXACT_FACTOR);
        RowPicker {
            columns: if exact {
                Vec::new()
            } else {
                pixel_columns(time, width)
            },
            keep: vec![exact; time.len()],
            exact,
        }
    }

    /// Whether every row is kept (the result fits the width as it is).
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// Keeps the rows where `values` (one series, a value per row) is first, lowest, highest
    /// and last in each pixel column.
    pub fn mark(&mut self, values: &[f64]) {
        for column in &self.columns {
            for row in extremes(values, column.clone()).into_iter().flatten() {
                self.keep[row] = true;
            }
        }
    }

    /// The rows kept, in time order.
    pub fn rows(&self) -> Vec<usize> {
        self.keep
            .iter()
            .enumerate()
            .filter_map(|(row, keep)| keep.then_some(row))
            .collect()
    }
}

/// The rows of each pixel column: `time` is cut into `width` equal spans from its first to
/// its last value; as time never decreases, each column's rows are one range.
fn pixel_columns(time: &[f64], width: usize) -> Vec<Range<usize>> {
    let (Some(&t0), Some(&t1)) = (time.first(), time.last()) else {
        return Vec::new();
    };
    let span = t1 - t0;
    let column_of = |t: f64| -> usize {
        if span > 0.0 && span.is_finite() {
            // `as` saturates: a NaN time lands in column 0, past the end in the last one.
            (((t - t0) / span * width as f64) as usize).min(width - 1)
        } else {
            0
        }
    };
    let mut columns = Vec::with_capacity(width);
    let mut start = 0;
    let mut current = column_of(t0);
    for (row, &t) in time.iter().enumerate().skip(1) {
        // A column never goes back (a NaN time stays in the column it is in).
        let c = column_of(t).max(current);
        if c != current {
            columns.push(start..row);
            start = row;
            current = c;
        }
    }
    columns.push(start..time.len());
    columns
}

/// First, lowest, highest and last row of `values` in `rows`, and the first non-number.
fn extremes(values: &[f64], rows: Range<usize>) -> [Option<usize>; 5] {
    let rows = rows.start.min(values.len())..rows.end.min(values.len());
    let (mut low, mut high, mut gap) = (None::<usize>, None::<usize>, None);
    for row in rows.clone() {
        let v = values[row];
        if !v.is_finite() {
            gap.get_or_insert(row);
            continue;
        }
        if low.is_none_or(|l| v < values[l]) {
            low = Some(row);
        }
        if high.is_none_or(|h| v > values[h]) {
            high = Some(row);
        }
    }
    let first = (!rows.is_empty()).then_some(rows.start);
    let last = rows.end.checked_sub(1).filter(|_| !rows.is_empty());
    [first, low, high, last, gap]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(time: &[f64], series: &[&[f64]], width: usize) -> Vec<usize> {
        let mut picker = RowPicker::new(time, width);
        for s in series {
            picker.mark(s);
        }
        picker.rows()
    }

    #[test]
    fn a_result_that_fits_is_kept_whole() {
        let time: Vec<f64> = (0..40).map(f64::from).collect();
        let picker = RowPicker::new(&time, 10);
        assert!(picker.is_exact());
        assert_eq!(picker.rows(), (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn every_column_keeps_its_first_lowest_highest_and_last_sample_in_time_order() {
        let n = 1_000_000;
        let time: Vec<f64> = (0..n).map(|i| i as f64 * 1e-3).collect();
        // Noise, with one spike up and one down that are a single sample wide.
        let mut values: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64 * 1e-3).collect();
        values[123_457] = 50.0;
        values[876_543] = -50.0;
        let width = 1000;
        let rows = kept(&time, &[&values], width);
        assert!(rows.len() <= 4 * width, "bounded: {} rows", rows.len());
        assert!(
            rows.len() >= 2 * width,
            "every column is kept: {}",
            rows.len()
        );
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "in time order");
        assert!(
            rows.contains(&123_457) && rows.contains(&876_543),
            "spikes survive"
        );
        assert_eq!((rows[0], *rows.last().unwrap()), (0, n - 1), "both ends");
        // Each column's extremes are among the kept rows.
        for column in pixel_columns(&time, width) {
            let in_column: Vec<usize> = rows
                .iter()
                .copied()
                .filter(|r| column.contains(r))
                .collect();
            let lowest = column.clone().map(|r| values[r]).fold(f64::MAX, f64::min);
            let highest = column.clone().map(|r| values[r]).fold(f64::MIN, f64::max);
            assert!(in_column.iter().any(|&r| values[r] == lowest));
            assert!(in_column.iter().any(|&r| values[r] == highest));
            assert_eq!(in_column.first(), Some(&column.start));
            assert_eq!(in_column.last(), Some(&(column.end - 1)));
        }
    }

    #[test]
    fn rows_are_shared_by_the_series_and_bounded_by_how_many_there_are() {
        let n = 100_000;
        let time: Vec<f64> = (0..n).map(f64::from).collect();
        let up: Vec<f64> = (0..n).map(|i| ((i * 31) % 97) as f64).collect();
        let down: Vec<f64> = up.iter().map(|v| -v * 2.0).collect();
        let width = 100;
        let one = kept(&time, &[&up], width);
        let both = kept(&time, &[&up, &down], width);
        assert!(one.iter().all(|r| both.contains(r)));
        // First and last are shared: at most 2 + 2 per series a column.
        assert!(both.len() <= width * (2 + 2 * 2), "{}", both.len());
    }

    #[test]
    fn a_gap_is_kept_so_the_plot_shows_it() {
        let n = 10_000;
        let time: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let mut values = vec![1.0; n];
        values[5_000] = f64::NAN;
        assert!(kept(&time, &[&values], 10).contains(&5_000));
    }

    #[test]
    fn events_at_one_time_and_a_zero_span_do_not_break_the_columns() {
        // A run of one instant (all times equal): one column, its ends kept.
        let time = vec![0.0; 100];
        let values: Vec<f64> = (0..100).map(f64::from).collect();
        assert_eq!(kept(&time, &[&values], 2), vec![0, 99]);
        // Repeated times (events) stay in one column each and in order.
        let time: Vec<f64> = (0..1000).map(|i| (i / 2) as f64).collect();
        let values: Vec<f64> = (0..1000).map(|i| f64::from(i % 7)).collect();
        let rows = kept(&time, &[&values], 50);
        assert!(rows.windows(2).all(|w| w[0] < w[1]));
        let columns = pixel_columns(&time, 50);
        assert_eq!(columns.len(), 50);
        assert_eq!(columns.last().unwrap().end, 1000);
    }
}
