//! The ODE integrators that drive Model Exchange FMUs through fmi-rs's pluggable
//! [`Solver`] interface.
//!
//! [`DormandPrince`] is an adaptive explicit Runge–Kutta 5(4) method (Dormand & Prince,
//! FSAL, local extrapolation) with error control per state, a PI step-size controller,
//! and state-event location on its 4th-order continuous extension. [`EulerFactory`] is
//! fmi-rs's fixed-step forward Euler, re-exported so that callers find both options here.
//!
//! Contract with the fmi-rs drivers (`fmi_rs::sim::fmi{2,3}::me::simulate`), which this
//! module must never break:
//!
//! * `step(next_time)` never returns a time beyond `next_time`, and never evaluates the
//!   model (`f` or `g`) beyond it either: `next_time` is an output point, an input event or
//!   a time event, and the model may not be valid past it. Without a state event the step
//!   ends exactly at `next_time`.
//! * A state event is returned at the first time the integrator can resolve (to about
//!   1e-12 relative) at which an event indicator lies on the other side of zero, so the FMU
//!   sees the new sign when the driver hands it the returned time and states.
//! * After every event the driver calls `reset(time)`; the states may have jumped, so the
//!   solver reloads them from the FMU and forgets everything but its step-size hint.

use std::cell::Cell;
use std::fmt;
use std::mem;
use std::rc::Rc;

use fmi_rs::sim::SimulationError;
use fmi_rs::sim::solver::{Dae, Ode, Solver, SolverFactory};

use super::bdf::{Bdf, BdfFactory};

/// Fixed-step forward Euler from fmi-rs, for callers that want a fixed step size.
pub use fmi_rs::sim::solver::ForwardEulerFactory as EulerFactory;

/// Nodes of the Dormand–Prince 5(4) tableau.
const C: [f64; 7] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];

/// Rows of the Dormand–Prince coupling matrix; row 6 is the 5th-order solution weights,
/// which is what makes the last stage reusable as the next step's first (FSAL).
const A: [&[f64]; 7] = [
    &[],
    &[1.0 / 5.0],
    &[3.0 / 40.0, 9.0 / 40.0],
    &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
    &[
        19372.0 / 6561.0,
        -25360.0 / 2187.0,
        64448.0 / 6561.0,
        -212.0 / 729.0,
    ],
    &[
        9017.0 / 3168.0,
        -355.0 / 33.0,
        46732.0 / 5247.0,
        49.0 / 176.0,
        -5103.0 / 18656.0,
    ],
    &[
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
    ],
];

/// Difference between the 5th- and the embedded 4th-order weights: the local error estimate.
const E: [f64; 7] = [
    71.0 / 57600.0,
    0.0,
    -71.0 / 16695.0,
    71.0 / 1920.0,
    -17253.0 / 339200.0,
    22.0 / 525.0,
    -1.0 / 40.0,
];

/// Weights of the last coefficient of Dormand–Prince's 4th-order continuous extension.
const D: [f64; 7] = [
    -12715105075.0 / 11282082432.0,
    0.0,
    87487479700.0 / 32700410799.0,
    -10690763975.0 / 1880347072.0,
    701980252875.0 / 199316789632.0,
    -1453857185.0 / 822651844.0,
    69997945.0 / 29380423.0,
];

/// Safety factor on the optimal step size, so most proposed steps pass the error test.
const SAFETY: f64 = 0.9;
/// Exponent on the current error in the PI controller (1/5 − 0.75 β, as in Hairer's DOPRI5).
const PI_ALPHA: f64 = 0.17;
/// Exponent on the previous error in the PI controller: damps step-size oscillation.
const PI_BETA: f64 = 0.04;
/// Largest factor by which one step may grow the step size.
const MAX_GROWTH: f64 = 10.0;
/// Smallest factor by which one step may shrink the step size.
const MAX_SHRINK: f64 = 0.2;
/// Floor for the remembered previous error, so one very accurate step cannot blow up the
/// next proposal.
const ERR_OLD_FLOOR: f64 = 1e-4;

/// Smallest relative tolerance honoured: below it the error test cannot be met in f64.
const MIN_RTOL: f64 = 1e-14;
/// Floor for a state's nominal in its absolute tolerance: a zero nominal from an FMU would
/// leave only relative control, which stalls a state passing through zero.
const MIN_NOMINAL: f64 = 1e-10;
/// A step that would end less than this factor short of `next_time` is stretched to land on
/// it, instead of leaving a sliver of a step for later.
const STRETCH: f64 = 1.01;
/// Smallest step, in units of the time's spacing of f64 values, before giving up.
const MIN_STEP_ULPS: f64 = 16.0;

/// Resolution of state-event times, relative to max(1, |t|).
const ROOT_TOLERANCE: f64 = 1e-12;
/// Length, relative to max(1, |t|), of the first step after a reset. The event was
/// returned just past the crossing, so an indicator whose slope the FMU reversed (a
/// bounce) crosses back within about ROOT_TOLERANCE / |slope ratio|; a step of the size
/// of the hint would jump over that re-crossing and the next real one together and miss
/// both. This short step catches slope ratios down to 1e-3.
const RESTART_STEP: f64 = 1e-9;
/// Illinois iterations before the root finder falls back to plain bisection.
const ILLINOIS_ITERATIONS: usize = 40;
/// Hard cap on root-finder iterations (bisection from a full step needs fewer than 110).
const MAX_ROOT_ITERATIONS: usize = 200;

/// Adaptive Dormand–Prince 5(4) integrator with state-event location; create it with
/// [`DormandPrinceFactory`].
pub struct DormandPrince<T> {
    ode: T,
    rtol: f64,
    /// Absolute tolerance per state: `rtol * nominal`.
    atol: Vec<f64>,
    max_step: f64,
    initial_step: Option<f64>,

    /// Time and states of the last accepted point (or of the last event or reset).
    t: f64,
    x: Vec<f64>,
    nominals: Vec<f64>,
    /// Stage derivatives; `k[0]` is f(t, x) whenever `k0_valid` holds.
    k: [Vec<f64>; 7],
    k0_valid: bool,
    x_new: Vec<f64>,
    x_stage: Vec<f64>,
    /// Coefficients of the continuous extension of the last attempted step.
    dense: [Vec<f64>; 4],

    /// Event indicators at the last accepted point: the reference for sign changes.
    z_pre: Vec<f64>,
    z_new: Vec<f64>,
    /// Scratch for the root finder: bracket ends, trial point and states there.
    z_left: Vec<f64>,
    z_right: Vec<f64>,
    z_mid: Vec<f64>,
    x_right: Vec<f64>,
    x_mid: Vec<f64>,

    /// Step size to try next; `None` until the first step picks one.
    h: Option<f64>,
    /// The next step is the first after a reset and must be short (see [`RESTART_STEP`]).
    restarting: bool,
    /// Error of the previous accepted step, for the PI controller.
    err_old: f64,

    n_accepted: u64,
    n_rejected: u64,
    n_events: u64,

    /// The stiffness test, when the caller can switch to an implicit method.
    stiffness: Option<StiffnessTest>,
    /// Estimate of h·|λ| from the last attempted step (for the stiffness test).
    h_lambda: f64,
}

/// Creates [`DormandPrince`] solvers for the fmi-rs Model Exchange drivers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DormandPrinceFactory {
    /// Largest step the integrator may take (e.g. to not step over short input pulses).
    pub max_step: Option<f64>,
    /// First step to try instead of Hairer's estimate.
    pub initial_step: Option<f64>,
}

/// Hairer & Wanner's stiffness test for DOPRI5 (Solving ODEs II, IV.2): h·|λ| estimated from
/// the last two stages stays above this (the stability boundary of the method is near 3.3) …
const STIFF_H_LAMBDA: f64 = 3.25;
/// … for this many accepted steps in a row: the step size is limited by stability, not
/// accuracy, and an implicit method would take far longer steps.
const STIFF_STEPS: u32 = 15;
/// Accepted steps below the boundary that clear the count (Hairer's `nonsti` = 6).
const NON_STIFF_STEPS: u32 = 6;

/// Counts the accepted steps whose size stability limits (see [`STIFF_H_LAMBDA`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct StiffnessTest {
    stiff_in_a_row: u32,
    non_stiff_in_a_row: u32,
}

impl StiffnessTest {
    /// Takes the estimate of h·|λ| of one accepted step; `true` once the model is stiff.
    fn record(&mut self, h_lambda: f64) -> bool {
        if h_lambda > STIFF_H_LAMBDA {
            self.non_stiff_in_a_row = 0;
            self.stiff_in_a_row += 1;
        } else {
            self.non_stiff_in_a_row += 1;
            if self.non_stiff_in_a_row >= NON_STIFF_STEPS {
                self.stiff_in_a_row = 0;
            }
        }
        self.stiff_in_a_row >= STIFF_STEPS
    }
}

/// How a call of [`DormandPrince::advance`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// At `next_time`.
    Reached,
    /// At a state event before it.
    Event,
    /// Before it, at an accepted point, because the stiffness test fired (only when
    /// testing): the caller continues with an implicit method.
    Stiff,
}

/// Where Dormand–Prince stopped, for a solver that continues from there.
pub(super) struct Handover<T> {
    pub ode: T,
    pub t: f64,
    pub x: Vec<f64>,
    pub nominals: Vec<f64>,
    pub rtol: f64,
    pub h: Option<f64>,
}

impl SolverFactory for DormandPrinceFactory {
    fn create<'a, O: Ode + 'a, D: Dae + 'a>(
        &self,
        start_time: f64,
        relative_tolerance: f64,
        ode: O,
        dae: Option<D>,
    ) -> Result<Box<dyn Solver + 'a>, SimulationError> {
        // The driver only passes a DAE when DAE mode is on; its states then include algebraic
        // variables this explicit method cannot solve for, so ignoring it would be wrong.
        if dae.is_some() {
            return Err(SimulationError::Solver(
                "the Dormand-Prince solver cannot integrate DAEs; disable DAE mode".to_owned(),
            ));
        }
        Ok(Box::new(DormandPrince::new(
            ode,
            start_time,
            relative_tolerance,
            self,
        )?))
    }
}

impl<T: Ode> DormandPrince<T> {
    /// Validates the settings and loads the initial states, derivatives and indicators.
    fn new(
        ode: T,
        start_time: f64,
        relative_tolerance: f64,
        options: &DormandPrinceFactory,
    ) -> Result<Self, SimulationError> {
        if !start_time.is_finite() {
            return Err(parameter(format!(
                "start time must be finite, got {start_time}"
            )));
        }
        let rtol = checked_relative_tolerance(relative_tolerance)?;
        let max_step = match options.max_step {
            Some(h) => positive("max_step", h)?,
            None => f64::INFINITY,
        };
        let initial_step = options
            .initial_step
            .map(|h| positive("initial_step", h))
            .transpose()?;

        let nx = ode.nx();
        let nz = ode.nz();
        let mut solver = Self {
            ode,
            rtol,
            atol: vec![0.0; nx],
            max_step,
            initial_step,
            t: start_time,
            x: vec![0.0; nx],
            nominals: vec![1.0; nx],
            k: std::array::from_fn(|_| vec![0.0; nx]),
            k0_valid: false,
            x_new: vec![0.0; nx],
            x_stage: vec![0.0; nx],
            dense: std::array::from_fn(|_| vec![0.0; nx]),
            z_pre: vec![0.0; nz],
            z_new: vec![0.0; nz],
            z_left: vec![0.0; nz],
            z_right: vec![0.0; nz],
            z_mid: vec![0.0; nz],
            x_right: vec![0.0; nx],
            x_mid: vec![0.0; nx],
            h: None,
            restarting: false,
            err_old: ERR_OLD_FLOOR,
            n_accepted: 0,
            n_rejected: 0,
            n_events: 0,
            stiffness: None,
            h_lambda: 0.0,
        };
        solver.load_state()?;
        Ok(solver)
    }

    /// Reads states and nominals from the model at `self.t`, then the derivatives and the
    /// indicators there: after an event everything the solver knew may be stale.
    fn load_state(&mut self) -> Result<(), SimulationError> {
        self.ode.init(&mut self.x, &mut self.nominals)?;
        for (atol, nominal) in self.atol.iter_mut().zip(&self.nominals) {
            *atol = self.rtol * usable_nominal(*nominal);
        }
        self.ode.f(self.t, &self.x, &mut self.k[0])?;
        self.k0_valid = true;
        if !self.z_pre.is_empty() {
            self.ode.g(self.t, &self.x, &mut self.z_pre)?;
        }
        Ok(())
    }

    /// Makes `k[0]` the derivative at the current point (it is stale right after an event).
    fn ensure_derivative(&mut self) -> Result<(), SimulationError> {
        if !self.k0_valid {
            self.ode.f(self.t, &self.x, &mut self.k[0])?;
            self.k0_valid = true;
        }
        Ok(())
    }

    /// Integrates towards `next_time`; says where it stopped.
    fn advance(&mut self, next_time: f64) -> Result<Outcome, SimulationError> {
        if !next_time.is_finite() {
            return Err(parameter(format!(
                "next time must be finite, got {next_time}"
            )));
        }
        let span = next_time - self.t;
        if span <= 0.0 {
            // The driver may ask for the current time again (e.g. a time event right at an
            // output point); going backwards, however, is a caller bug.
            if -span <= root_tolerance(self.t) {
                return Ok(Outcome::Reached);
            }
            return Err(parameter(format!(
                "next time ({next_time}) is before the current time ({})",
                self.t
            )));
        }

        if self.max_step < min_step(next_time) {
            return Err(parameter(format!(
                "max_step ({:e}) is too small to advance time at t = {next_time}",
                self.max_step
            )));
        }

        self.ensure_derivative()?;
        // Floored so that t + h always moves; too large a floor shows up as a rejection.
        let mut h_pref = match self.h {
            Some(h) => h,
            None => self.initial_step_size(next_time)?,
        }
        .max(min_step(self.t));
        let mut rejected_last = false;
        let mut cap = if mem::take(&mut self.restarting) {
            RESTART_STEP * self.t.abs().max(1.0)
        } else {
            f64::INFINITY
        };

        loop {
            let remaining = next_time - self.t;
            let h_allowed = h_pref.min(self.max_step);
            let h_nominal = h_allowed.min(cap);
            // Stretch onto next_time, but never beyond max_step.
            let last = remaining <= (h_nominal * STRETCH).min(self.max_step);
            let (h, t_new) = if last {
                (remaining, next_time)
            } else {
                (h_nominal, self.t + h_nominal)
            };

            let err = self.attempt_step(h, t_new)?;

            if err <= 1.0 {
                let h_next = self.step_size_after_accept(h, err, rejected_last);
                // A step shortened to hit next_time or to restart carefully says nothing
                // about the step the solution allows, so keep the longer proposal.
                h_pref = if h < h_allowed {
                    h_next.max(h_allowed)
                } else {
                    h_next
                }
                .max(min_step(t_new));
                cap = f64::INFINITY;
                self.h = Some(h_pref.min(self.max_step));
                self.n_accepted = self.n_accepted.saturating_add(1);

                if self.crossed_in_step(t_new)? {
                    let t_event = self.locate_event(h, t_new)?;
                    self.commit_event(t_event);
                    return Ok(Outcome::Event);
                }
                self.commit_step(t_new);
                if last {
                    return Ok(Outcome::Reached);
                }
                let h_lambda = self.h_lambda;
                if let Some(test) = self.stiffness.as_mut()
                    && test.record(h_lambda)
                {
                    return Ok(Outcome::Stiff);
                }
                rejected_last = false;
            } else {
                self.n_rejected = self.n_rejected.saturating_add(1);
                h_pref = step_size_after_reject(h, err);
                rejected_last = true;
                let h_min = min_step(self.t);
                if h_pref.is_nan() || h_pref < h_min {
                    return Err(SimulationError::Solver(format!(
                        "step size underflow at t = {}: the error test needs a step of \
                         {h_pref:e}, below the minimum {h_min:e} (relative tolerance {}); the \
                         model may be stiff, discontinuous without an event indicator, or \
                         return non-finite derivatives",
                        self.t, self.rtol
                    )));
                }
            }
        }
    }

    /// Hairer's initial step-size heuristic, bounded so that its trial evaluation of the
    /// model stays before `next_time`.
    fn initial_step_size(&mut self, next_time: f64) -> Result<f64, SimulationError> {
        let h_max = (next_time - self.t).min(self.max_step);
        if let Some(h) = self.initial_step {
            return Ok(h.min(self.max_step));
        }
        if self.x.is_empty() {
            // Nothing to control: the step only needs to reach the next output point.
            return Ok(h_max);
        }

        let mut dnf = 0.0;
        let mut dny = 0.0;
        for ((x, f0), atol) in self.x.iter().zip(&self.k[0]).zip(&self.atol) {
            let sc = atol + self.rtol * x.abs();
            dnf += (f0 / sc).powi(2);
            dny += (x / sc).powi(2);
        }
        let h0 = if dnf <= 1e-10 || dny <= 1e-10 {
            1e-6
        } else {
            0.01 * (dny / dnf).sqrt()
        }
        .min(h_max);

        // One explicit Euler step to estimate the second derivative.
        for ((xs, x), f0) in self.x_stage.iter_mut().zip(&self.x).zip(&self.k[0]) {
            *xs = x + h0 * f0;
        }
        let t_trial = (self.t + h0).min(next_time);
        self.ode.f(t_trial, &self.x_stage, &mut self.k[1])?;
        let mut d2 = 0.0;
        for (((f1, f0), x), atol) in self.k[1]
            .iter()
            .zip(&self.k[0])
            .zip(&self.x)
            .zip(&self.atol)
        {
            let sc = atol + self.rtol * x.abs();
            d2 += ((f1 - f0) / sc).powi(2);
        }
        let der2 = d2.sqrt() / h0;
        let der12 = der2.max(dnf.sqrt());
        let h1 = if der12 <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / der12).powf(1.0 / 5.0)
        };
        Ok((100.0 * h0).min(h1).min(h_max))
    }

    /// Computes the stages of one step of size `h` ending at `t_new` into `k[1..]` and
    /// `x_new`, and returns the scaled error norm (≤ 1 means accept).
    fn attempt_step(&mut self, h: f64, t_new: f64) -> Result<f64, SimulationError> {
        for (s, (row, c)) in A.iter().zip(C).enumerate().skip(1) {
            // Stages 5 and 6 have c = 1: they use t_new itself, so rounding in t + h cannot
            // take the model past next_time.
            let t_s = if s >= 5 { t_new } else { self.t + c * h };
            let (done, rest) = self.k.split_at_mut(s);
            let Some((k_s, _)) = rest.split_first_mut() else {
                return Err(SimulationError::IndexOutOfBounds);
            };
            // The last stage's argument is the new solution (FSAL).
            let y = if s == 6 {
                &mut self.x_new
            } else {
                &mut self.x_stage
            };
            combine(y, &self.x, h, row, done);
            self.ode.f(t_s, y, k_s)?;
        }
        if self.stiffness.is_some() {
            self.h_lambda = h * self.stiffness_ratio();
        }
        Ok(self.error_norm(h))
    }

    /// |f(x_new) − f(x_6)| / |x_new − x_6| over the last two stages (both at t + h): a lower
    /// estimate of the Jacobian's dominant eigenvalue's modulus (Hairer's DOPRI5 test).
    fn stiffness_ratio(&self) -> f64 {
        let mut num = 0.0;
        let mut den = 0.0;
        for (((k6, k5), x_new), x6) in self.k[6]
            .iter()
            .zip(&self.k[5])
            .zip(&self.x_new)
            .zip(&self.x_stage)
        {
            num += (k6 - k5).powi(2);
            den += (x_new - x6).powi(2);
        }
        if den > 0.0 { (num / den).sqrt() } else { 0.0 }
    }

    /// RMS of the local error estimate, each state scaled by atol + rtol·|x|.
    fn error_norm(&mut self, h: f64) -> f64 {
        if self.x.is_empty() {
            return 0.0;
        }
        weighted_sum(&mut self.x_stage, h, &E, &self.k);
        let mut sum = 0.0;
        for (((e, atol), x), x_new) in self
            .x_stage
            .iter()
            .zip(&self.atol)
            .zip(&self.x)
            .zip(&self.x_new)
        {
            let sc = atol + self.rtol * x.abs().max(x_new.abs());
            sum += (e / sc).powi(2);
        }
        let err = (sum / self.x.len() as f64).sqrt();
        // NaN or inf from the model: reject and shrink, until it passes or underflows.
        if err.is_finite() { err } else { f64::INFINITY }
    }

    /// PI controller after an accepted step; never grows right after a rejection.
    fn step_size_after_accept(&mut self, h: f64, err: f64, rejected_last: bool) -> f64 {
        let fac = (err.powf(PI_ALPHA) / self.err_old.powf(PI_BETA) / SAFETY)
            .clamp(1.0 / MAX_GROWTH, 1.0 / MAX_SHRINK);
        self.err_old = err.max(ERR_OLD_FLOOR);
        let h_new = h / fac;
        if rejected_last { h_new.min(h) } else { h_new }
    }

    /// Evaluates the indicators at the end of an accepted step and reports whether any of
    /// them changed sign since the last accepted point.
    fn crossed_in_step(&mut self, t_new: f64) -> Result<bool, SimulationError> {
        if self.z_pre.is_empty() {
            return Ok(false);
        }
        self.ode.g(t_new, &self.x_new, &mut self.z_new)?;
        Ok(any_crossing(&self.z_pre, &self.z_new))
    }

    /// Fills the continuous-extension coefficients of the step just computed.
    fn prepare_dense_output(&mut self, h: f64) {
        let [r1, r2, r3, r4] = &mut self.dense;
        for ((((((r1, r2), r3), x), x_new), k_first), k_last) in r1
            .iter_mut()
            .zip(r2.iter_mut())
            .zip(r3.iter_mut())
            .zip(&self.x)
            .zip(&self.x_new)
            .zip(&self.k[0])
            .zip(&self.k[6])
        {
            *r1 = x_new - x;
            *r2 = h * k_first - *r1;
            *r3 = *r1 - h * k_last - *r2;
        }
        weighted_sum(r4, h, &D, &self.k);
    }

    /// Finds the earliest sign change inside the step [t, t_new] of size `h` by Illinois
    /// regula falsi over all indicators on the continuous extension, and returns the right
    /// end of the final bracket, leaving the states and indicators there in `x_right` and
    /// `z_right`. The left end keeps every indicator on its pre-step side, so the returned
    /// point has at least one indicator across zero.
    fn locate_event(&mut self, h: f64, t_new: f64) -> Result<f64, SimulationError> {
        self.prepare_dense_output(h);
        let t0 = self.t;
        let tol = root_tolerance(t_new);
        let mut t_left = t0;
        let mut t_right = t_new;
        self.z_left.copy_from_slice(&self.z_pre);
        self.z_right.copy_from_slice(&self.z_new);
        self.x_right.copy_from_slice(&self.x_new);
        // Illinois weights: halve the retained end's values when the same end moves twice.
        let mut w_left = 1.0;
        let mut w_right = 1.0;
        let mut last_moved: Option<Side> = None;

        for iteration in 0..MAX_ROOT_ITERATIONS {
            if t_right - t_left <= tol {
                break;
            }
            let guess = if iteration < ILLINOIS_ITERATIONS {
                earliest_secant_root(
                    (t_left, &self.z_left, w_left),
                    (t_right, &self.z_right, w_right),
                )
            } else {
                0.5 * (t_left + t_right)
            };
            // Stay tol/2 inside the bracket: guarantees progress and termination.
            let t_mid = guess.max(t_left + 0.5 * tol).min(t_right - 0.5 * tol);

            dense_eval(&self.x, &self.dense, (t_mid - t0) / h, &mut self.x_mid);
            self.ode.g(t_mid, &self.x_mid, &mut self.z_mid)?;

            if any_crossing(&self.z_left, &self.z_mid) {
                t_right = t_mid;
                mem::swap(&mut self.z_right, &mut self.z_mid);
                mem::swap(&mut self.x_right, &mut self.x_mid);
                if last_moved == Some(Side::Right) {
                    w_left *= 0.5;
                }
                w_right = 1.0;
                last_moved = Some(Side::Right);
            } else {
                t_left = t_mid;
                mem::swap(&mut self.z_left, &mut self.z_mid);
                if last_moved == Some(Side::Left) {
                    w_right *= 0.5;
                }
                w_left = 1.0;
                last_moved = Some(Side::Left);
            }
        }
        Ok(t_right)
    }

    /// Moves to the located event point. The derivative there is not known yet; the driver
    /// resets the solver anyway, but a step without reset would still start correctly.
    fn commit_event(&mut self, t_event: f64) {
        self.t = t_event;
        mem::swap(&mut self.x, &mut self.x_right);
        mem::swap(&mut self.z_pre, &mut self.z_right);
        self.k0_valid = false;
        self.n_events = self.n_events.saturating_add(1);
    }

    /// Moves to the end of an accepted step; its last stage is the next step's first (FSAL).
    fn commit_step(&mut self, t_new: f64) {
        self.t = t_new;
        mem::swap(&mut self.x, &mut self.x_new);
        self.k.swap(0, 6);
        if !self.z_pre.is_empty() {
            mem::swap(&mut self.z_pre, &mut self.z_new);
        }
    }
}

impl<T: Ode> Solver for DormandPrince<T> {
    /// Restarts at `time` from the model's current states (they may have jumped at the
    /// event), keeping only the step-size hint.
    fn reset(&mut self, time: f64) -> Result<(), SimulationError> {
        if !time.is_finite() {
            return Err(parameter(format!("reset time must be finite, got {time}")));
        }
        self.t = time;
        self.err_old = ERR_OLD_FLOOR;
        self.restarting = !self.z_pre.is_empty();
        self.load_state()
    }

    fn step(&mut self, next_time: f64) -> Result<(f64, &[f64], bool), SimulationError> {
        // Without the stiffness test `advance` never stops for stiffness.
        let outcome = self.advance(next_time)?;
        Ok((self.t, &self.x, outcome == Outcome::Event))
    }
}

impl<T: Ode> DormandPrince<T> {
    /// Creates a solver that runs the stiffness test (for [`Auto`]).
    fn with_stiffness_test(
        ode: T,
        start_time: f64,
        relative_tolerance: f64,
        options: &DormandPrinceFactory,
    ) -> Result<Self, SimulationError> {
        let mut solver = Self::new(ode, start_time, relative_tolerance, options)?;
        solver.stiffness = Some(StiffnessTest::default());
        Ok(solver)
    }

    /// The model and the last accepted point, for a solver that continues from there.
    fn into_handover(self) -> Handover<T> {
        Handover {
            ode: self.ode,
            t: self.t,
            x: self.x,
            nominals: self.nominals,
            rtol: self.rtol,
            h: self.h,
        }
    }
}

/// Creates [`Auto`] solvers: Dormand–Prince with Hairer's stiffness test, continuing with
/// BDF from the point where the test fires. The default for Model Exchange: non-stiff models
/// keep the explicit method's cheap steps, stiff ones finish instead of crawling.
#[derive(Debug, Clone, Default)]
pub struct AutoFactory {
    /// Largest step either method may take.
    pub max_step: Option<f64>,
    /// Set to the time of the switch to BDF when it happens, so that the engine can say so
    /// in the run's log (the solver cannot write there itself).
    pub switched_at: Rc<Cell<Option<f64>>>,
}

impl SolverFactory for AutoFactory {
    fn create<'a, O: Ode + 'a, D: Dae + 'a>(
        &self,
        start_time: f64,
        relative_tolerance: f64,
        ode: O,
        dae: Option<D>,
    ) -> Result<Box<dyn Solver + 'a>, SimulationError> {
        if dae.is_some() {
            return Err(SimulationError::Solver(
                "the automatic solver cannot integrate DAEs; disable DAE mode".to_owned(),
            ));
        }
        let options = DormandPrinceFactory {
            max_step: self.max_step,
            initial_step: None,
        };
        let explicit =
            DormandPrince::with_stiffness_test(ode, start_time, relative_tolerance, &options)?;
        Ok(Box::new(Auto {
            phase: Phase::Explicit(explicit),
            bdf: BdfFactory {
                max_step: self.max_step,
            },
            switched_at: Rc::clone(&self.switched_at),
        }))
    }
}

/// Which method [`Auto`] is running.
enum Phase<T> {
    Explicit(DormandPrince<T>),
    Implicit(Bdf<T>),
    /// Only while handing over; a failed handover leaves it here and the run fails.
    Switching,
}

/// Dormand–Prince until its stiffness test fires, BDF from then on; see [`AutoFactory`].
pub struct Auto<T> {
    phase: Phase<T>,
    bdf: BdfFactory,
    switched_at: Rc<Cell<Option<f64>>>,
}

impl<T: Ode> Auto<T> {
    /// Continues with BDF from Dormand–Prince's last accepted point.
    fn switch_to_bdf(&mut self) -> Result<(), SimulationError> {
        let Phase::Explicit(explicit) = mem::replace(&mut self.phase, Phase::Switching) else {
            return Err(switch_failed());
        };
        let h = explicit.into_handover();
        self.switched_at.set(Some(h.t));
        let bdf = Bdf::continue_from(h.ode, h.t, &h.x, &h.nominals, h.rtol, &self.bdf, h.h)?;
        self.phase = Phase::Implicit(bdf);
        Ok(())
    }
}

fn switch_failed() -> SimulationError {
    SimulationError::Solver("the switch from Dormand-Prince to BDF failed".to_owned())
}

impl<T: Ode> Solver for Auto<T> {
    fn reset(&mut self, time: f64) -> Result<(), SimulationError> {
        match &mut self.phase {
            Phase::Explicit(solver) => solver.reset(time),
            Phase::Implicit(solver) => solver.reset(time),
            Phase::Switching => Err(switch_failed()),
        }
    }

    fn step(&mut self, next_time: f64) -> Result<(f64, &[f64], bool), SimulationError> {
        let mut event = match &mut self.phase {
            Phase::Explicit(solver) => match solver.advance(next_time)? {
                Outcome::Reached => Some(false),
                Outcome::Event => Some(true),
                Outcome::Stiff => None,
            },
            Phase::Implicit(solver) => Some(solver.advance(next_time)?),
            Phase::Switching => return Err(switch_failed()),
        };
        if event.is_none() {
            self.switch_to_bdf()?;
            if let Phase::Implicit(solver) = &mut self.phase {
                event = Some(solver.advance(next_time)?);
            }
        }
        let event = event.ok_or_else(switch_failed)?;
        match &self.phase {
            Phase::Explicit(solver) => Ok((solver.t, &solver.x, event)),
            Phase::Implicit(solver) => {
                let (t, x) = solver.point();
                Ok((t, x, event))
            }
            Phase::Switching => Err(switch_failed()),
        }
    }
}

impl<T> fmt::Debug for DormandPrince<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DormandPrince")
            .field("time", &self.t)
            .field("step_size", &self.h)
            .field("relative_tolerance", &self.rtol)
            .field("max_step", &self.max_step)
            .field("accepted_steps", &self.n_accepted)
            .field("rejected_steps", &self.n_rejected)
            .field("state_events", &self.n_events)
            .finish_non_exhaustive()
    }
}

/// Which end of the root-finding bracket moved last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// The sign-change convention shared with fmi-rs's ForwardEuler: zero counts as negative.
pub(super) fn crossed(pre: f64, z: f64) -> bool {
    (pre <= 0.0 && z > 0.0) || (pre > 0.0 && z <= 0.0)
}

pub(super) fn any_crossing(pre: &[f64], z: &[f64]) -> bool {
    pre.iter().zip(z).any(|(pre, z)| crossed(*pre, *z))
}

/// The earliest secant estimate, over the indicators that change sign across the bracket,
/// of where they cross zero; the midpoint if no estimate is usable.
pub(super) fn earliest_secant_root(left: (f64, &[f64], f64), right: (f64, &[f64], f64)) -> f64 {
    let (t_left, z_left, w_left) = left;
    let (t_right, z_right, w_right) = right;
    let estimate = z_left
        .iter()
        .zip(z_right)
        .filter(|(zl, zr)| crossed(**zl, **zr))
        .map(|(zl, zr)| {
            let (fl, fr) = (w_left * zl, w_right * zr);
            t_right - fr * (t_right - t_left) / (fr - fl)
        })
        .filter(|t| t.is_finite())
        .fold(f64::INFINITY, f64::min);
    if estimate.is_finite() {
        estimate
    } else {
        0.5 * (t_left + t_right)
    }
}

/// Dormand–Prince's continuous extension at `theta` ∈ [0, 1] of the step from `x0`.
fn dense_eval(x0: &[f64], dense: &[Vec<f64>; 4], theta: f64, out: &mut [f64]) {
    let [r1, r2, r3, r4] = dense;
    let theta1 = 1.0 - theta;
    for (((((o, x0), r1), r2), r3), r4) in out.iter_mut().zip(x0).zip(r1).zip(r2).zip(r3).zip(r4) {
        *o = x0 + theta * (r1 + theta1 * (r2 + theta * (r3 + theta1 * r4)));
    }
}

/// out = y + h · Σ coeffs[j] · ks[j].
fn combine(out: &mut [f64], y: &[f64], h: f64, coeffs: &[f64], ks: &[Vec<f64>]) {
    out.copy_from_slice(y);
    add_weighted(out, h, coeffs, ks);
}

/// out = h · Σ coeffs[j] · ks[j].
fn weighted_sum(out: &mut [f64], h: f64, coeffs: &[f64], ks: &[Vec<f64>]) {
    out.fill(0.0);
    add_weighted(out, h, coeffs, ks);
}

fn add_weighted(out: &mut [f64], h: f64, coeffs: &[f64], ks: &[Vec<f64>]) {
    for (c, k) in coeffs.iter().zip(ks) {
        if *c != 0.0 {
            let hc = h * c;
            for (o, k) in out.iter_mut().zip(k) {
                *o += hc * k;
            }
        }
    }
}

/// Step to retry with after a rejected step: the error scales as h^5, shrink accordingly.
fn step_size_after_reject(h: f64, err: f64) -> f64 {
    h / (err.powf(PI_ALPHA) / SAFETY).min(1.0 / MAX_SHRINK)
}

/// Resolution of event times near `t`.
pub(super) fn root_tolerance(t: f64) -> f64 {
    ROOT_TOLERANCE * t.abs().max(1.0)
}

/// Smallest step the controller may ask for near `t` before the integration is hopeless.
pub(super) fn min_step(t: f64) -> f64 {
    MIN_STEP_ULPS * f64::EPSILON * t.abs().max(1.0)
}

/// A state's nominal as used in its absolute tolerance: FMI's default 1 if the model's is
/// unusable, and never below [`MIN_NOMINAL`].
pub(super) fn usable_nominal(nominal: f64) -> f64 {
    let nominal = nominal.abs();
    if nominal.is_finite() {
        nominal.max(MIN_NOMINAL)
    } else {
        1.0
    }
}

pub(super) fn checked_relative_tolerance(rtol: f64) -> Result<f64, SimulationError> {
    if rtol.is_finite() && rtol > 0.0 {
        Ok(rtol.max(MIN_RTOL))
    } else {
        Err(parameter(format!(
            "relative tolerance must be positive and finite, got {rtol}"
        )))
    }
}

pub(super) fn positive(name: &str, value: f64) -> Result<f64, SimulationError> {
    if value > 0.0 && !value.is_nan() {
        Ok(value)
    } else {
        Err(parameter(format!("{name} must be positive, got {value}")))
    }
}

pub(super) fn parameter(message: String) -> SimulationError {
    SimulationError::Parameter(message)
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use fmi_rs::sim::solver::DummyDae;

    use super::*;

    type TestResult = Result<(), SimulationError>;

    const GRAVITY: f64 = 9.81;

    fn no_jacobian() -> Result<(), SimulationError> {
        Err(SimulationError::Solver("no Jacobian in tests".to_owned()))
    }

    fn solver<T: Ode>(ode: T, rtol: f64) -> Result<DormandPrince<T>, SimulationError> {
        DormandPrince::new(ode, 0.0, rtol, &DormandPrinceFactory::default())
    }

    /// One state, x' = rhs(t, x), x(0) = 1, with the given nominal.
    struct Scalar {
        rhs: fn(f64, f64) -> f64,
        nominal: f64,
    }

    /// x' = -x.
    const DAHLQUIST: Scalar = Scalar {
        rhs: |_, x| -x,
        nominal: 1.0,
    };

    /// x' = cos(t) x, x(0) = 1, exact exp(sin t): one step of size h checks the orders of
    /// the tableau (local error h^6), the error estimate (h^5) and the dense output (h^5).
    const GROWTH: Scalar = Scalar {
        rhs: |t, x| t.cos() * x,
        nominal: 1.0,
    };

    impl Ode for Scalar {
        fn nx(&self) -> usize {
            1
        }
        fn nz(&self) -> usize {
            0
        }
        fn init(&self, x: &mut [f64], nominals: &mut [f64]) -> TestResult {
            x.fill(1.0);
            nominals.fill(self.nominal);
            Ok(())
        }
        fn f(&self, t: f64, x: &[f64], der_x: &mut [f64]) -> TestResult {
            for (d, x) in der_x.iter_mut().zip(x) {
                *d = (self.rhs)(t, *x);
            }
            Ok(())
        }
        fn g(&self, _t: f64, _x: &[f64], _z: &mut [f64]) -> TestResult {
            Ok(())
        }
        fn supports_jacobian(&self) -> bool {
            false
        }
        fn jacobian(&self, _t: f64, _x: &[f64], _j: &mut [f64]) -> TestResult {
            no_jacobian()
        }
    }

    /// A two-state model whose states live in a RefCell, like an FMU's, so that the test can
    /// play the driver: write the returned states back, apply jumps, then reset.
    struct TwoStates {
        state: RefCell<[f64; 2]>,
        rhs: fn(f64, [f64; 2]) -> [f64; 2],
        /// The event indicator, or None for a model without indicators.
        indicator: Option<fn(f64, [f64; 2]) -> f64>,
        f_calls: Cell<u64>,
    }

    impl TwoStates {
        fn new(
            x0: [f64; 2],
            rhs: fn(f64, [f64; 2]) -> [f64; 2],
            indicator: Option<fn(f64, [f64; 2]) -> f64>,
        ) -> Self {
            Self {
                state: RefCell::new(x0),
                rhs,
                indicator,
                f_calls: Cell::new(0),
            }
        }

        fn ball() -> Self {
            Self::new([1.0, 0.0], |_, [_, v]| [v, -GRAVITY], Some(|_, [h, _]| h))
        }

        fn van_der_pol() -> Self {
            Self::new(
                [2.0, 0.0],
                |_, [x0, x1]| [x1, (1.0 - x0 * x0) * x1 - x0],
                Some(|_, [x0, _]| x0),
            )
        }

        /// x'' = -(2π)² x: period 1.
        fn oscillator() -> Self {
            Self::new([1.0, 0.0], |_, [x, v]| [v, -OMEGA * OMEGA * x], None)
        }

        /// The driver's part of an event: the FMU takes the returned states.
        fn set(&self, x: &[f64]) {
            let mut state = self.state.borrow_mut();
            for (s, x) in state.iter_mut().zip(x) {
                *s = *x;
            }
        }
    }

    const OMEGA: f64 = 2.0 * std::f64::consts::PI;

    fn pair(x: &[f64]) -> [f64; 2] {
        [
            x.first().copied().unwrap_or(f64::NAN),
            x.get(1).copied().unwrap_or(f64::NAN),
        ]
    }

    impl Ode for TwoStates {
        fn nx(&self) -> usize {
            2
        }
        fn nz(&self) -> usize {
            usize::from(self.indicator.is_some())
        }
        fn init(&self, x: &mut [f64], nominals: &mut [f64]) -> TestResult {
            x.copy_from_slice(&*self.state.borrow());
            nominals.fill(1.0);
            Ok(())
        }
        fn f(&self, t: f64, x: &[f64], der_x: &mut [f64]) -> TestResult {
            self.f_calls.set(self.f_calls.get() + 1);
            der_x.copy_from_slice(&(self.rhs)(t, pair(x)));
            Ok(())
        }
        fn g(&self, t: f64, x: &[f64], z: &mut [f64]) -> TestResult {
            if let Some(indicator) = self.indicator {
                z.fill(indicator(t, pair(x)));
            }
            Ok(())
        }
        fn supports_jacobian(&self) -> bool {
            false
        }
        fn jacobian(&self, _t: f64, _x: &[f64], _j: &mut [f64]) -> TestResult {
            no_jacobian()
        }
    }

    /// With a small nominal the absolute tolerance rtol·nominal never dominates, so the
    /// error stays relative as x decays; with nominal 1 it is absolute (≈ rtol) once x < 1.
    #[test]
    fn dahlquist_matches_exponential_at_successive_output_points() -> TestResult {
        let factory = DormandPrinceFactory::default();
        for nominal in [1e-6, 1.0] {
            let ode = Scalar {
                nominal,
                ..DAHLQUIST
            };
            let mut solver = factory.create(0.0, 1e-8, ode, None::<DummyDae>)?;
            for t_out in [1.0, 2.0, 5.0, 10.0] {
                let (t, x, event) = solver.step(t_out)?;
                let exact = (-t_out).exp();
                let abs = (pair(x)[0] - exact).abs();
                let rel = abs / exact;
                println!(
                    "dahlquist nominal {nominal}, t = {t}: relative error {rel:.3e}, absolute {abs:.3e}"
                );
                assert_eq!(t, t_out);
                assert!(!event);
                assert!(abs < 10.0 * 1e-8 * exact.max(nominal));
                if nominal < 1.0 {
                    assert!(rel < 1e-6, "relative error {rel:e} at t = {t}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn falling_ball_event_and_bounce_match_closed_form() -> TestResult {
        let mut solver = solver(TwoStates::ball(), 1e-8)?;
        let t1_exact = (2.0 / GRAVITY).sqrt();
        let v1_exact = -(2.0 * GRAVITY).sqrt();

        let (t1, x, event) = solver.step(3.0)?;
        let [h1, v1] = pair(x);
        println!(
            "ball first crossing: dt = {:.3e}, h = {h1:.3e}, dv = {:.3e}",
            t1 - t1_exact,
            v1 - v1_exact
        );
        assert!(event);
        assert!((t1 - t1_exact).abs() < 1e-9);
        assert!(t1 >= t1_exact - 1e-12, "event returned before the crossing");
        assert!(h1 <= 0.0 && h1.abs() < 1e-9, "h = {h1:e}");
        assert!((v1 - v1_exact).abs() < 1e-9 * v1_exact.abs());

        // Emulate the driver and the FMU: take the states, bounce, reset.
        let mut t = t1;
        let mut x_event = [h1, v1];
        let mut downward = vec![t1];
        let mut upward = vec![];
        while downward.len() < 2 {
            solver.ode.set(&x_event);
            {
                let mut state = solver.ode.state.borrow_mut();
                if state[0] <= 0.0 && state[1] < 0.0 {
                    state[1] *= -0.7;
                }
            }
            solver.reset(t)?;
            let (t_next, x, event) = solver.step(3.0)?;
            assert!(event, "no second crossing before t = 3");
            t = t_next;
            x_event = pair(x);
            if x_event[1] < 0.0 {
                downward.push(t);
            } else {
                upward.push(t);
            }
        }
        // Right after the bounce, h (left at -1e-13 or so by the root finder) turns positive:
        // by the sign convention that is a crossing, reported within the root tolerance.
        for t_up in &upward {
            println!("ball upward re-crossing at t1 + {:.3e}", t_up - t1);
            assert!(t_up - t1 < 1e-9);
        }
        assert!(upward.len() <= 1);
        let t2_exact = t1_exact + 2.0 * 0.7 * v1_exact.abs() / GRAVITY;
        let t2 = downward[1];
        println!("ball second crossing: error {:.3e}", t2 - t2_exact);
        assert!((t2 - t2_exact).abs() < 1e-8);
        assert!(x_event[0].abs() < 1e-9);
        Ok(())
    }

    /// Only one output point, as when the output interval is long: every bounce must still
    /// be found, at the closed-form times t_(n+1) = t_n + 2·0.7^n·|v1|/g.
    #[test]
    fn ball_keeps_bouncing_with_one_output_point() -> TestResult {
        let mut solver = solver(TwoStates::ball(), 1e-8)?;
        let v1 = (2.0 * GRAVITY).sqrt();
        let mut expected = (2.0 / GRAVITY).sqrt();
        let mut speed = v1;
        let mut t = 0.0;
        let mut bounces = 0;
        let mut worst: f64 = 0.0;
        while bounces < 6 {
            let (t_event, x, event) = solver.step(10.0)?;
            assert!(event, "missed a bounce after t = {t}");
            t = t_event;
            let mut x = pair(x);
            if x[1] < 0.0 {
                worst = worst.max((t - expected).abs());
                bounces += 1;
                speed *= 0.7;
                expected += 2.0 * speed / GRAVITY;
                x[1] *= -0.7;
            }
            solver.ode.set(&x);
            solver.reset(t)?;
        }
        println!("ball: 6 bounces, worst bounce-time error {worst:.3e}, {solver:?}");
        assert!(worst < 1e-8);
        Ok(())
    }

    #[test]
    fn van_der_pol_period_from_upward_crossings() -> TestResult {
        const PERIOD: f64 = 6.6632868593;
        let mut solver = solver(TwoStates::van_der_pol(), 1e-10)?;
        let mut upward = vec![];
        let mut next_output = 0.5;
        let mut t = 0.0;
        while t < 60.0 {
            let (t_reached, x, event) = solver.step(next_output)?;
            assert!(t_reached <= next_output);
            t = t_reached;
            if event {
                let x = pair(x);
                if x[1] > 0.0 {
                    upward.push(t);
                }
                solver.ode.set(&x);
                solver.reset(t)?;
            }
            if t == next_output {
                next_output += 0.5;
            }
        }
        let periods: Vec<f64> = upward
            .windows(2)
            .filter(|w| w[0] > 20.0)
            .map(|w| w[1] - w[0])
            .collect();
        assert!(periods.len() >= 4);
        let worst = periods
            .iter()
            .map(|p| (p - PERIOD).abs())
            .fold(0.0, f64::max);
        println!(
            "van der Pol: {} periods, worst error {worst:.3e}",
            periods.len()
        );
        assert!(worst < 1e-4);
        Ok(())
    }

    #[test]
    fn system_without_indicators_integrates() -> TestResult {
        let mut solver = solver(TwoStates::oscillator(), 1e-8)?;
        assert_eq!(solver.ode.nz(), 0);
        for i in 1..=40 {
            let next = f64::from(i) * 0.05;
            let (t, x, event) = solver.step(next)?;
            assert_eq!(t, next);
            assert!(!event);
            let exact = (OMEGA * t).cos();
            assert!((pair(x)[0] - exact).abs() < 1e-6);
        }
        Ok(())
    }

    /// No states, one time-only indicator: the root finder still works on time alone.
    struct Clock;

    impl Ode for Clock {
        fn nx(&self) -> usize {
            0
        }
        fn nz(&self) -> usize {
            1
        }
        fn init(&self, _x: &mut [f64], _nominals: &mut [f64]) -> TestResult {
            Ok(())
        }
        fn f(&self, _t: f64, _x: &[f64], _der_x: &mut [f64]) -> TestResult {
            Ok(())
        }
        fn g(&self, t: f64, _x: &[f64], z: &mut [f64]) -> TestResult {
            z.fill(t - 0.5);
            Ok(())
        }
        fn supports_jacobian(&self) -> bool {
            false
        }
        fn jacobian(&self, _t: f64, _x: &[f64], _j: &mut [f64]) -> TestResult {
            no_jacobian()
        }
    }

    #[test]
    fn system_without_states_finds_time_indicator() -> TestResult {
        let mut solver = solver(Clock, 1e-6)?;
        let (t, x, event) = solver.step(2.0)?;
        assert!(event && x.is_empty());
        assert!(t > 0.5 && t - 0.5 <= 1e-12, "t = {t}");
        solver.reset(t)?;
        let (t, _, event) = solver.step(2.0)?;
        assert!(!event);
        assert_eq!(t, 2.0);
        Ok(())
    }

    #[test]
    fn never_steps_past_next_time() -> TestResult {
        let mut solver = solver(TwoStates::ball(), 1e-6)?;
        let mut t = 0.0;
        let mut i = 0_u32;
        let mut events = 0;
        while t < 3.0 {
            i += 1;
            let next = (t + 0.013 * f64::from(1 + i % 7)).min(3.0);
            let (t_reached, x, event) = solver.step(next)?;
            assert!(t_reached <= next, "{t_reached} > {next}");
            assert!(t_reached > t);
            // Bounce times accumulate at t ≈ 2.559 (Zeno); before that no bounce may be lost.
            assert!(
                t_reached > 2.5 || pair(x)[0] > -1e-9,
                "the ball fell through the floor at {t_reached}"
            );
            if event {
                events += 1;
                let mut x = pair(x);
                if x[0] <= 0.0 && x[1] < 0.0 {
                    x[1] *= -0.7;
                }
                solver.ode.set(&x);
                solver.reset(t_reached)?;
            } else {
                assert_eq!(t_reached, next);
            }
            t = t_reached;
        }
        assert!(events >= 4, "{events} events");
        Ok(())
    }

    #[test]
    fn next_time_equal_to_current_time_returns_at_once() -> TestResult {
        let mut solver = solver(TwoStates::ball(), 1e-6)?;
        let calls = solver.ode.f_calls.get();
        let (t, x, event) = solver.step(0.0)?;
        assert_eq!((t, pair(x), event), (0.0, [1.0, 0.0], false));
        assert_eq!(solver.ode.f_calls.get(), calls);

        solver.step(0.25)?;
        let (t, _, event) = solver.step(0.25)?;
        assert_eq!((t, event), (0.25, false));
        assert!(solver.step(0.1).is_err(), "stepping backwards must fail");
        Ok(())
    }

    #[test]
    fn harmonic_oscillator_energy_drift_is_small() -> TestResult {
        let mut solver = solver(TwoStates::oscillator(), 1e-9)?;
        let energy = |[x, v]: [f64; 2]| 0.5 * (v * v + OMEGA * OMEGA * x * x);
        let e0 = energy([1.0, 0.0]);
        let mut worst: f64 = 0.0;
        for period in 1..=10 {
            let (_, x, _) = solver.step(f64::from(period))?;
            worst = worst.max((energy(pair(x)) - e0).abs() / e0);
        }
        let [x, v] = pair(&solver.x);
        println!(
            "oscillator: relative energy drift {worst:.3e}, x(10) - 1 = {:.3e}, v(10) = {v:.3e}, {:?}",
            x - 1.0,
            solver
        );
        assert!(worst < 1e-7);
        Ok(())
    }

    #[test]
    fn max_step_bounds_the_step_size() -> TestResult {
        let options = DormandPrinceFactory {
            max_step: Some(0.01),
            initial_step: None,
        };
        let mut solver = DormandPrince::new(DAHLQUIST, 0.0, 1e-3, &options)?;
        solver.step(1.0)?;
        assert!(solver.n_accepted >= 100, "{} steps", solver.n_accepted);
        Ok(())
    }

    /// Derivatives turn NaN after t = 0.5: the solver must fail with a clear error.
    struct Broken;

    impl Ode for Broken {
        fn nx(&self) -> usize {
            1
        }
        fn nz(&self) -> usize {
            0
        }
        fn init(&self, x: &mut [f64], nominals: &mut [f64]) -> TestResult {
            x.fill(1.0);
            nominals.fill(1.0);
            Ok(())
        }
        fn f(&self, t: f64, _x: &[f64], der_x: &mut [f64]) -> TestResult {
            der_x.fill(if t > 0.5 { f64::NAN } else { 1.0 });
            Ok(())
        }
        fn g(&self, _t: f64, _x: &[f64], _z: &mut [f64]) -> TestResult {
            Ok(())
        }
        fn supports_jacobian(&self) -> bool {
            false
        }
        fn jacobian(&self, _t: f64, _x: &[f64], _j: &mut [f64]) -> TestResult {
            no_jacobian()
        }
    }

    #[test]
    fn step_size_underflow_is_an_error() -> TestResult {
        let mut solver = solver(Broken, 1e-6)?;
        match solver.step(1.0) {
            Err(SimulationError::Solver(message)) => {
                assert!(message.contains("step size underflow"), "{message}");
            }
            other => panic!("expected an underflow error, got {:?}", other.map(|r| r.0)),
        }
        Ok(())
    }

    #[test]
    fn rejects_bad_settings_and_daes() {
        let factory = DormandPrinceFactory::default();
        for rtol in [0.0, -1e-6, f64::NAN, f64::INFINITY] {
            assert!(
                factory
                    .create(0.0, rtol, DAHLQUIST, None::<DummyDae>)
                    .is_err()
            );
        }
        let bad_max = DormandPrinceFactory {
            max_step: Some(0.0),
            initial_step: None,
        };
        assert!(
            bad_max
                .create(0.0, 1e-6, DAHLQUIST, None::<DummyDae>)
                .is_err()
        );
        assert!(
            factory
                .create(0.0, 1e-6, DAHLQUIST, Some(DummyDae))
                .is_err()
        );
    }

    #[test]
    fn tableau_estimate_and_dense_output_have_their_orders() -> TestResult {
        let mut errors = vec![];
        for h in [0.4, 0.2, 0.1] {
            let mut solver = solver(GROWTH, 1.0)?;
            let estimate = solver.attempt_step(h, h)?;
            solver.prepare_dense_output(h);
            let mut mid = [0.0];
            dense_eval(&solver.x, &solver.dense, 0.5, &mut mid);
            let end = (pair(&solver.x_new)[0] - h.sin().exp()).abs();
            let dense = (mid[0] - (0.5 * h).sin().exp()).abs();
            errors.push((end, estimate, dense));
        }
        for pair in errors.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let ratios = (a.0 / b.0, a.1 / b.1, a.2 / b.2);
            println!(
                "halving h: end error ÷{:.1}, estimate ÷{:.1}, dense ÷{:.1}",
                ratios.0, ratios.1, ratios.2
            );
            assert!(ratios.0 > 48.0, "5th order needs ~64");
            assert!(ratios.1 > 24.0, "the estimate needs ~32");
            assert!(ratios.2 > 24.0, "4th-order dense output needs ~32");
        }
        Ok(())
    }
    /// Van der Pol with the given µ, from (2, 0), under the automatic solver to `stop`;
    /// returns where it switched to BDF (if it did) and the final x0.
    fn auto_van_der_pol(
        rhs: fn(f64, &[f64], &mut [f64]),
        stop: f64,
    ) -> Result<(Option<f64>, f64), SimulationError> {
        use crate::sim::bdf::tests::System;
        let factory = AutoFactory::default();
        let mut solver =
            factory.create(0.0, 1e-6, System::new(&[2.0, 0.0], rhs), None::<DummyDae>)?;
        let mut x0 = 2.0;
        for i in 1..=100 {
            let (_, x, event) = solver.step(stop * f64::from(i) / 100.0)?;
            assert!(!event);
            x0 = x[0];
        }
        Ok((factory.switched_at.get(), x0))
    }

    #[test]
    fn stiffness_test_keeps_a_non_stiff_model_on_dormand_prince() -> TestResult {
        let (switched, x0) = auto_van_der_pol(
            |_, x, d| {
                d[0] = x[1];
                d[1] = (1.0 - x[0] * x[0]) * x[1] - x[0];
            },
            20.0,
        )?;
        println!("van der Pol µ = 1: switched at {switched:?}, x0(20) = {x0}");
        assert_eq!(switched, None);
        Ok(())
    }

    #[test]
    fn stiffness_test_switches_a_stiff_model_to_bdf() -> TestResult {
        let (switched, x0) = auto_van_der_pol(
            |_, x, d| {
                d[0] = x[1];
                d[1] = 1000.0 * (1.0 - x[0] * x[0]) * x[1] - x[0];
            },
            3000.0,
        )?;
        println!("van der Pol µ = 1000: switched at {switched:?}, x0(3000) = {x0}");
        let t = switched.expect("µ = 1000 is stiff");
        assert!(t < 10.0, "switched late, at {t}");
        // x0 stays on the slow manifold |x0| in [1, 2] away from the fast jumps.
        assert!(x0.abs() <= 2.1, "{x0}");
        Ok(())
    }
}
