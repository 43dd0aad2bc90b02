//! A variable-order (1–5) BDF integrator for stiff Model Exchange FMUs, written for this
//! project after Shampine & Reichelt, "The MATLAB ODE suite" (1997): the numerical
//! differentiation formulas (NDF, BDF with their κ corrections) in the quasi-constant step
//! size form, with the solution history held as a fixed-size array of backward differences.
//!
//! Why our own and not a crate: the models we drive are small (a few to a few hundred
//! states), so a dense Jacobian by finite differences and a small LU are all the linear
//! algebra needed; fmi-rs's `sundials` feature downloads at build time, Debian's SUNDIALS is
//! a different major version than fmi-rs binds, and a crate brings its own solver interface.
//!
//! Memory is fixed at creation (about (MAX_ORDER + 3 + n) · n numbers): nothing grows with
//! the number of steps. A step that cannot be completed says why and where: "step size
//! underflow at t = …", or, when Newton's iteration fails even with a fresh Jacobian and the
//! step cannot shrink further, "Newton iteration failed to converge at t = …".
//!
//! The contract with fmi-rs's drivers is [`super::solver`]'s: `step(next_time)` never
//! evaluates the model beyond `next_time` and ends there unless a state event comes first;
//! `reset(time)` reloads the states after an event.

use std::mem;

use fmi_rs::sim::SimulationError;
use fmi_rs::sim::solver::{Dae, Ode, Solver, SolverFactory};

use super::solver::{
    any_crossing, checked_relative_tolerance, earliest_secant_root, min_step, parameter, positive,
    root_tolerance, usable_nominal,
};

/// Highest order of the formulas (NDFs above 5 are not stable enough to be useful).
pub const MAX_ORDER: usize = 5;
/// Newton iterations per attempt before the step counts as not converged.
const NEWTON_MAXITER: usize = 4;
/// Smallest factor by which a rejected step shrinks.
const MIN_FACTOR: f64 = 0.2;
/// Largest factor by which the step may grow at an order/step-size change.
const MAX_FACTOR: f64 = 10.0;
/// Shampine & Reichelt's κ per order: the NDF corrections that buy accuracy at orders 1–4
/// for little stability (order 5 is the plain BDF).
const KAPPA: [f64; MAX_ORDER + 1] = [0.0, -0.1850, -1.0 / 9.0, -0.0823, -0.0415, 0.0];
/// Illinois iterations before the root finder falls back to bisection (as Dormand–Prince).
const ILLINOIS_ITERATIONS: usize = 40;
/// Hard cap on root-finder iterations.
const MAX_ROOT_ITERATIONS: usize = 200;
/// A step that would end this factor short of `next_time` is stretched to land on it.
const STRETCH: f64 = 1.01;

/// γ_k = Σ_{j=1..k} 1/j.
fn gamma(order: usize) -> f64 {
    (1..=order).map(|j| 1.0 / j as f64).sum()
}

/// α_k = (1 − κ_k) γ_k: the leading coefficient of the NDF of order k.
fn alpha(order: usize) -> f64 {
    (1.0 - KAPPA[order]) * gamma(order)
}

/// The constant of the local error of order k: κ_k γ_k + 1/(k + 1).
fn error_constant(order: usize) -> f64 {
    KAPPA[order] * gamma(order) + 1.0 / (order as f64 + 1.0)
}

/// Creates [`Bdf`] solvers for the fmi-rs Model Exchange drivers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BdfFactory {
    /// Largest step the integrator may take.
    pub max_step: Option<f64>,
}

impl SolverFactory for BdfFactory {
    fn create<'a, O: Ode + 'a, D: Dae + 'a>(
        &self,
        start_time: f64,
        relative_tolerance: f64,
        ode: O,
        dae: Option<D>,
    ) -> Result<Box<dyn Solver + 'a>, SimulationError> {
        if dae.is_some() {
            return Err(SimulationError::Solver(
                "the BDF solver cannot integrate DAEs; disable DAE mode".to_owned(),
            ));
        }
        Ok(Box::new(Bdf::new(
            ode,
            start_time,
            relative_tolerance,
            self,
        )?))
    }
}

/// Variable-order BDF/NDF integrator with state-event location; see the module docs.
pub struct Bdf<T> {
    ode: T,
    n: usize,
    rtol: f64,
    atol: Vec<f64>,
    nominals: Vec<f64>,
    max_step: f64,

    t: f64,
    x: Vec<f64>,
    /// Backward differences of the solution at spacing `h`: row i (of n values) is ∇^i y,
    /// rows 0..=order+2 are used. Fixed size: MAX_ORDER + 3 rows.
    diffs: Vec<f64>,
    order: usize,
    /// Current step size; `None` until the first step picks one.
    h: Option<f64>,
    /// Accepted steps since the last change of order or step size.
    equal_steps: usize,
    /// The history in `diffs` is no longer the solution's (after an event or a reset).
    restart: bool,

    /// Dense Jacobian, row-major; `jacobian_current` if computed at the current step.
    jac: Vec<f64>,
    jacobian_current: bool,
    has_jacobian: bool,
    /// LU factors of I − c·J (row-major, with row permutation), valid if `lu_valid`.
    lu: Vec<f64>,
    perm: Vec<usize>,
    lu_valid: bool,

    /// Scratch: prediction, Newton correction and its sum, derivative, scale.
    predict: Vec<f64>,
    psi: Vec<f64>,
    y_new: Vec<f64>,
    d: Vec<f64>,
    dy: Vec<f64>,
    f: Vec<f64>,
    scale: Vec<f64>,
    work: Vec<f64>,

    z_pre: Vec<f64>,
    z_new: Vec<f64>,
    z_left: Vec<f64>,
    z_right: Vec<f64>,
    z_mid: Vec<f64>,
    x_right: Vec<f64>,
    x_mid: Vec<f64>,

    /// Counters for the Debug output and the tests.
    pub(super) n_accepted: u64,
    pub(super) n_rejected: u64,
    pub(super) max_order_used: usize,
}

impl<T: Ode> Bdf<T> {
    /// Validates the settings and loads states, nominals and indicators from the model.
    fn new(
        ode: T,
        start_time: f64,
        relative_tolerance: f64,
        options: &BdfFactory,
    ) -> Result<Self, SimulationError> {
        let n = ode.nx();
        let mut solver = Self::empty(ode, start_time, relative_tolerance, options)?;
        let mut x = vec![0.0; n];
        let mut nominals = vec![1.0; n];
        solver.ode.init(&mut x, &mut nominals)?;
        solver.start_from(start_time, &x, &nominals)?;
        Ok(solver)
    }

    /// A solver that continues from `(t, x)`, which need not be the model's current states
    /// (Dormand–Prince hands over its last accepted point when it detects stiffness).
    pub(super) fn continue_from(
        ode: T,
        t: f64,
        x: &[f64],
        nominals: &[f64],
        relative_tolerance: f64,
        options: &BdfFactory,
        step_hint: Option<f64>,
    ) -> Result<Self, SimulationError> {
        let mut solver = Self::empty(ode, t, relative_tolerance, options)?;
        solver.start_from(t, x, nominals)?;
        solver.h = step_hint;
        Ok(solver)
    }

    fn empty(
        ode: T,
        start_time: f64,
        relative_tolerance: f64,
        options: &BdfFactory,
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
        let n = ode.nx();
        let nz = ode.nz();
        Ok(Self {
            ode,
            n,
            rtol,
            atol: vec![0.0; n],
            nominals: vec![1.0; n],
            max_step,
            t: start_time,
            x: vec![0.0; n],
            diffs: vec![0.0; (MAX_ORDER + 3) * n],
            order: 1,
            h: None,
            equal_steps: 0,
            restart: true,
            jac: vec![0.0; n * n],
            jacobian_current: false,
            has_jacobian: false,
            lu: vec![0.0; n * n],
            perm: vec![0; n],
            lu_valid: false,
            predict: vec![0.0; n],
            psi: vec![0.0; n],
            y_new: vec![0.0; n],
            d: vec![0.0; n],
            dy: vec![0.0; n],
            f: vec![0.0; n],
            scale: vec![0.0; n],
            work: vec![0.0; n],
            z_pre: vec![0.0; nz],
            z_new: vec![0.0; nz],
            z_left: vec![0.0; nz],
            z_right: vec![0.0; nz],
            z_mid: vec![0.0; nz],
            x_right: vec![0.0; n],
            x_mid: vec![0.0; n],
            n_accepted: 0,
            n_rejected: 0,
            max_order_used: 1,
        })
    }

    /// Takes `(t, x)` as the current point and the indicators there as the reference.
    fn start_from(&mut self, t: f64, x: &[f64], nominals: &[f64]) -> Result<(), SimulationError> {
        self.t = t;
        self.x.copy_from_slice(x);
        self.nominals.copy_from_slice(nominals);
        for (atol, nominal) in self.atol.iter_mut().zip(&self.nominals) {
            *atol = self.rtol * usable_nominal(*nominal);
        }
        self.restart = true;
        if !self.z_pre.is_empty() {
            self.ode.g(t, &self.x, &mut self.z_pre)?;
        }
        Ok(())
    }

    /// The time and states reached.
    pub(super) fn point(&self) -> (f64, &[f64]) {
        (self.t, &self.x)
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.diffs[i * self.n..(i + 1) * self.n]
    }

    /// Order 1 history from the current point: ∇⁰y = x, ∇¹y = h·f(t, x).
    fn restart_history(&mut self, next_time: f64) -> Result<(), SimulationError> {
        self.ode.f(self.t, &self.x, &mut self.f)?;
        let h = match self.h {
            Some(h) => h.min(next_time - self.t).min(self.max_step),
            None => self.initial_step_size(next_time)?,
        }
        .max(min_step(self.t));
        self.h = Some(h);
        self.diffs.fill(0.0);
        let n = self.n;
        self.diffs[..n].copy_from_slice(&self.x);
        for (d, f) in self.diffs[n..2 * n].iter_mut().zip(&self.f) {
            *d = h * f;
        }
        self.order = 1;
        self.equal_steps = 0;
        self.lu_valid = false;
        self.jacobian_current = false;
        self.restart = false;
        Ok(())
    }

    /// Hairer's initial step-size heuristic for an order-1 method, kept before `next_time`;
    /// expects f(t, x) in `self.f`.
    fn initial_step_size(&mut self, next_time: f64) -> Result<f64, SimulationError> {
        let h_max = (next_time - self.t).min(self.max_step);
        if self.n == 0 {
            return Ok(h_max);
        }
        self.set_scale_from(&self.x.clone());
        let d0 = rms_scaled(&self.x, &self.scale);
        let d1 = rms_scaled(&self.f, &self.scale);
        let h0 = if d0 < 1e-5 || d1 < 1e-5 {
            1e-6
        } else {
            0.01 * d0 / d1
        }
        .min(h_max);
        for ((w, x), f) in self.work.iter_mut().zip(&self.x).zip(&self.f) {
            *w = x + h0 * f;
        }
        let mut f1 = mem::take(&mut self.dy);
        self.ode
            .f((self.t + h0).min(next_time), &self.work, &mut f1)?;
        for (w, (f1, f0)) in self.work.iter_mut().zip(f1.iter().zip(&self.f)) {
            *w = f1 - f0;
        }
        self.dy = f1;
        let d2 = rms_scaled(&self.work, &self.scale) / h0;
        let h1 = if d1.max(d2) <= 1e-15 {
            (h0 * 1e-3).max(1e-6)
        } else {
            (0.01 / d1.max(d2)).sqrt()
        };
        Ok((100.0 * h0).min(h1).min(h_max))
    }

    /// scale_i = atol_i + rtol·|y_i|.
    fn set_scale_from(&mut self, y: &[f64]) {
        for ((s, atol), y) in self.scale.iter_mut().zip(&self.atol).zip(y) {
            *s = atol + self.rtol * y.abs();
        }
    }

    /// Multiplies the step size by `factor`, rewriting the differences for the new spacing
    /// (Shampine & Reichelt's D ← (R·U)ᵀ D).
    #[allow(clippy::needless_range_loop)] // index arithmetic, as in the formulas
    fn rescale(&mut self, factor: f64) {
        let order = self.order;
        let ru = change_matrix(order, factor);
        let n = self.n;
        for col in 0..n {
            let mut old = [0.0; MAX_ORDER + 1];
            for (i, o) in old.iter_mut().enumerate().take(order + 1) {
                *o = self.diffs[i * n + col];
            }
            for j in 0..=order {
                let mut sum = 0.0;
                for (i, o) in old.iter().enumerate().take(order + 1) {
                    sum += ru[i][j] * o;
                }
                self.diffs[j * n + col] = sum;
            }
        }
        if let Some(h) = self.h.as_mut() {
            *h *= factor;
        }
        self.equal_steps = 0;
        self.lu_valid = false;
    }

    /// Finite-difference Jacobian at (t, y), with f(t, y) given.
    #[allow(clippy::needless_range_loop)] // index arithmetic, as in the formulas
    fn compute_jacobian(&mut self, t: f64, y: &[f64], f0: &[f64]) -> Result<(), SimulationError> {
        let n = self.n;
        let mut column = mem::take(&mut self.dy);
        self.work.copy_from_slice(y);
        for j in 0..n {
            let delta =
                f64::EPSILON.sqrt() * y[j].abs().max(1e-3 * usable_nominal(self.nominals[j]));
            let saved = self.work[j];
            self.work[j] = saved + delta;
            let delta = self.work[j] - saved;
            self.ode.f(t, &self.work, &mut column)?;
            self.work[j] = saved;
            for i in 0..n {
                self.jac[i * n + j] = (column[i] - f0[i]) / delta;
            }
        }
        self.dy = column;
        self.lu_valid = false;
        // A Jacobian with NaN or ∞ (the model failed at the trial point) is not kept: the
        // factorization fails, the step shrinks, and the next attempt computes a new one.
        self.has_jacobian = self.jac.iter().all(|v| v.is_finite());
        self.jacobian_current = self.has_jacobian;
        Ok(())
    }

    /// Factors I − c·J; `false` if it is singular.
    fn factor(&mut self, c: f64) -> bool {
        let n = self.n;
        for i in 0..n {
            for j in 0..n {
                self.lu[i * n + j] = f64::from(u8::from(i == j)) - c * self.jac[i * n + j];
            }
        }
        self.lu_valid = lu_factor(&mut self.lu, &mut self.perm, n);
        self.lu_valid
    }

    /// Newton's iteration for the NDF's implicit equation at `t_new`; leaves the solution in
    /// `y_new` and its correction from the prediction in `d`. Returns the iterations used, or
    /// `None` if it did not converge.
    fn solve_implicit(
        &mut self,
        t_new: f64,
        c: f64,
        tol: f64,
    ) -> Result<Option<usize>, SimulationError> {
        self.d.fill(0.0);
        self.y_new.copy_from_slice(&self.predict);
        let mut dy_norm_old: Option<f64> = None;
        for k in 0..NEWTON_MAXITER {
            self.ode.f(t_new, &self.y_new, &mut self.f)?;
            if self.f.iter().any(|v| !v.is_finite()) {
                return Ok(None);
            }
            for (((dy, f), psi), d) in self.dy.iter_mut().zip(&self.f).zip(&self.psi).zip(&self.d) {
                *dy = c * f - psi - d;
            }
            lu_solve(&self.lu, &self.perm, self.n, &mut self.dy);
            let dy_norm = rms_scaled(&self.dy, &self.scale);
            let rate = dy_norm_old.map(|old| dy_norm / old);
            if let Some(rate) = rate
                && (rate >= 1.0
                    || rate.powi((NEWTON_MAXITER - k) as i32) / (1.0 - rate) * dy_norm > tol)
            {
                return Ok(None);
            }
            for ((y, d), dy) in self.y_new.iter_mut().zip(self.d.iter_mut()).zip(&self.dy) {
                *y += dy;
                *d += dy;
            }
            if !dy_norm.is_finite() {
                return Ok(None);
            }
            if dy_norm == 0.0 || rate.is_some_and(|rate| rate / (1.0 - rate) * dy_norm < tol) {
                return Ok(Some(k + 1));
            }
            dy_norm_old = Some(dy_norm);
        }
        Ok(None)
    }

    /// Integrates towards `next_time`; returns whether it stopped early at a state event.
    pub(super) fn advance(&mut self, next_time: f64) -> Result<bool, SimulationError> {
        if !next_time.is_finite() {
            return Err(parameter(format!(
                "next time must be finite, got {next_time}"
            )));
        }
        let span = next_time - self.t;
        if span <= 0.0 {
            if -span <= root_tolerance(self.t) {
                return Ok(false);
            }
            return Err(parameter(format!(
                "next time ({next_time}) is before the current time ({})",
                self.t
            )));
        }
        if self.restart {
            self.restart_history(next_time)?;
        }
        loop {
            if self.step_once(next_time)? {
                return Ok(true);
            }
            if self.t >= next_time {
                return Ok(false);
            }
        }
    }

    /// One accepted step (after as many rejected attempts as it takes), ending at or before
    /// `next_time`; returns whether it ended at a state event.
    fn step_once(&mut self, next_time: f64) -> Result<bool, SimulationError> {
        let n = self.n;
        let newton_tol = (10.0 * f64::EPSILON / self.rtol).max(0.03_f64.min(self.rtol.sqrt()));
        let mut h = self.h.unwrap_or(next_time - self.t);
        if h > self.max_step {
            self.rescale(self.max_step / h);
            h = self.max_step;
        }
        loop {
            let h_min = min_step(self.t);
            if h.is_nan() || h < h_min {
                return Err(SimulationError::Solver(format!(
                    "step size underflow at t = {}: the BDF step would be {h:e}, below the \
                     minimum {h_min:e} (relative tolerance {}); the model may be \
                     discontinuous without an event indicator or return non-finite \
                     derivatives",
                    self.t, self.rtol
                )));
            }
            let remaining = next_time - self.t;
            let t_new = if remaining <= h * STRETCH {
                let factor = remaining / h;
                if (factor - 1.0).abs() > 1e-12 {
                    self.rescale(factor);
                }
                h = remaining;
                self.h = Some(h);
                next_time
            } else {
                self.t + h
            };
            let order = self.order;

            // Prediction and the history term ψ of the implicit equation.
            self.predict.fill(0.0);
            self.psi.fill(0.0);
            for i in 0..=order {
                for (p, d) in self.predict.iter_mut().zip(&self.diffs[i * n..(i + 1) * n]) {
                    *p += d;
                }
            }
            let a = alpha(order);
            for i in 1..=order {
                let g = gamma(i) / a;
                for (p, d) in self.psi.iter_mut().zip(&self.diffs[i * n..(i + 1) * n]) {
                    *p += g * d;
                }
            }
            let predict = mem::take(&mut self.predict);
            self.set_scale_from(&predict);
            self.predict = predict;
            let c = h / a;

            let mut converged = None;
            loop {
                if !self.has_jacobian {
                    self.ode.f(t_new, &self.predict, &mut self.f)?;
                    let (predict, f) = (self.predict.clone(), self.f.clone());
                    self.compute_jacobian(t_new, &predict, &f)?;
                }
                if !self.lu_valid && !self.factor(c) {
                    break;
                }
                converged = self.solve_implicit(t_new, c, newton_tol)?;
                if converged.is_some() || self.jacobian_current {
                    break;
                }
                self.ode.f(t_new, &self.predict, &mut self.f)?;
                let (predict, f) = (self.predict.clone(), self.f.clone());
                self.compute_jacobian(t_new, &predict, &f)?;
            }
            let Some(iterations) = converged else {
                self.n_rejected += 1;
                let h_next = 0.5 * h;
                if h_next.is_nan() || h_next < min_step(self.t) {
                    return Err(SimulationError::Solver(format!(
                        "Newton iteration failed to converge at t = {} (step size {h:e}, \
                         order {order}); the model may be discontinuous without an event \
                         indicator or return non-finite derivatives",
                        self.t
                    )));
                }
                self.rescale(0.5);
                h = h_next;
                continue;
            };

            let safety =
                0.9 * (2 * NEWTON_MAXITER + 1) as f64 / (2 * NEWTON_MAXITER + iterations) as f64;
            let y_new = mem::take(&mut self.y_new);
            self.set_scale_from(&y_new);
            self.y_new = y_new;
            let error_norm = error_constant(order) * rms_scaled(&self.d, &self.scale);
            if error_norm.is_nan() || error_norm > 1.0 {
                self.n_rejected += 1;
                let factor = if error_norm.is_finite() {
                    MIN_FACTOR.max(safety * error_norm.powf(-1.0 / (order as f64 + 1.0)))
                } else {
                    MIN_FACTOR
                };
                self.rescale(factor);
                h *= factor;
                continue;
            }

            self.accept(t_new);
            if self.crossed_in_step()? {
                let t_event = self.locate_event(t_new, h)?;
                self.t = t_event;
                mem::swap(&mut self.x, &mut self.x_right);
                mem::swap(&mut self.z_pre, &mut self.z_right);
                self.restart = true;
                return Ok(true);
            }
            if !self.z_pre.is_empty() {
                mem::swap(&mut self.z_pre, &mut self.z_new);
            }
            self.adapt_order(error_norm, safety);
            return Ok(false);
        }
    }

    /// Makes the step to `t_new` current: new point and updated differences.
    fn accept(&mut self, t_new: f64) {
        let n = self.n;
        let order = self.order;
        self.n_accepted += 1;
        self.equal_steps += 1;
        self.jacobian_current = false;
        self.t = t_new;
        self.x.copy_from_slice(&self.y_new);
        // ∇^{k+2} = d − ∇^{k+1}; ∇^{k+1} = d; ∇^i += ∇^{i+1} for i = k..0.
        for j in 0..n {
            let d = self.d[j];
            self.diffs[(order + 2) * n + j] = d - self.diffs[(order + 1) * n + j];
            self.diffs[(order + 1) * n + j] = d;
        }
        for i in (0..=order).rev() {
            for j in 0..n {
                self.diffs[i * n + j] += self.diffs[(i + 1) * n + j];
            }
        }
    }

    /// After order + 1 equal steps, picks the order (k − 1, k or k + 1) that allows the
    /// longest next step, and that step.
    fn adapt_order(&mut self, error_norm: f64, safety: f64) {
        let order = self.order;
        if self.equal_steps < order + 1 {
            return;
        }
        let norm_of = |solver: &Self, row: usize, k: usize| {
            error_constant(k) * rms_scaled(solver.row(row), &solver.scale)
        };
        let lower = if order > 1 {
            norm_of(self, order, order - 1)
        } else {
            f64::INFINITY
        };
        let higher = if order < MAX_ORDER {
            norm_of(self, order + 2, order + 1)
        } else {
            f64::INFINITY
        };
        let factors = [
            lower.powf(-1.0 / order as f64),
            error_norm.powf(-1.0 / (order as f64 + 1.0)),
            higher.powf(-1.0 / (order as f64 + 2.0)),
        ];
        let (best, factor) =
            factors
                .iter()
                .enumerate()
                .fold((1, f64::NEG_INFINITY), |(bi, bf), (i, f)| {
                    if *f > bf { (i, *f) } else { (bi, bf) }
                });
        self.order = order + best - 1;
        self.max_order_used = self.max_order_used.max(self.order);
        let factor = MAX_FACTOR.min(safety * factor);
        self.rescale(factor);
    }

    /// Evaluates the indicators at the new point and reports a sign change since the last.
    fn crossed_in_step(&mut self) -> Result<bool, SimulationError> {
        if self.z_pre.is_empty() {
            return Ok(false);
        }
        self.ode.g(self.t, &self.x, &mut self.z_new)?;
        Ok(any_crossing(&self.z_pre, &self.z_new))
    }

    /// The interpolating polynomial of the current history at `t_eval` (within the last step).
    fn dense_eval(&self, t_eval: f64, h: f64, out: &mut [f64]) {
        let n = self.n;
        out.copy_from_slice(self.row(0));
        let mut product = 1.0;
        for j in 0..self.order {
            let shift = self.t - h * j as f64;
            product *= (t_eval - shift) / (h * (j as f64 + 1.0));
            for (o, d) in out.iter_mut().zip(&self.diffs[(j + 1) * n..(j + 2) * n]) {
                *o += d * product;
            }
        }
    }

    /// Illinois regula falsi over the indicators on the interpolant of the step that ended
    /// at `t_new` = `self.t`; returns the right end of the final bracket, with the states and
    /// indicators there in `x_right` and `z_right` (as Dormand–Prince's).
    fn locate_event(&mut self, t_new: f64, h: f64) -> Result<f64, SimulationError> {
        let tol = root_tolerance(t_new);
        let mut t_left = t_new - h;
        let mut t_right = t_new;
        self.z_left.copy_from_slice(&self.z_pre);
        self.z_right.copy_from_slice(&self.z_new);
        self.x_right.copy_from_slice(&self.x);
        let (mut w_left, mut w_right) = (1.0, 1.0);
        let mut last_right: Option<bool> = None;
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
            let t_mid = guess.max(t_left + 0.5 * tol).min(t_right - 0.5 * tol);
            let mut x_mid = mem::take(&mut self.x_mid);
            self.dense_eval(t_mid, h, &mut x_mid);
            self.x_mid = x_mid;
            self.ode.g(t_mid, &self.x_mid, &mut self.z_mid)?;
            if any_crossing(&self.z_left, &self.z_mid) {
                t_right = t_mid;
                mem::swap(&mut self.z_right, &mut self.z_mid);
                mem::swap(&mut self.x_right, &mut self.x_mid);
                if last_right == Some(true) {
                    w_left *= 0.5;
                }
                w_right = 1.0;
                last_right = Some(true);
            } else {
                t_left = t_mid;
                mem::swap(&mut self.z_left, &mut self.z_mid);
                if last_right == Some(false) {
                    w_right *= 0.5;
                }
                w_left = 1.0;
                last_right = Some(false);
            }
        }
        Ok(t_right)
    }
}

impl<T: Ode> Solver for Bdf<T> {
    /// Restarts at `time` from the model's current states at order 1, keeping the step size
    /// and the Jacobian (it is refreshed if Newton's iteration struggles).
    fn reset(&mut self, time: f64) -> Result<(), SimulationError> {
        if !time.is_finite() {
            return Err(parameter(format!("reset time must be finite, got {time}")));
        }
        let mut x = mem::take(&mut self.x);
        let mut nominals = mem::take(&mut self.nominals);
        self.ode.init(&mut x, &mut nominals)?;
        self.x = x;
        self.nominals = nominals;
        let (x, nominals) = (self.x.clone(), self.nominals.clone());
        self.start_from(time, &x, &nominals)
    }

    fn step(&mut self, next_time: f64) -> Result<(f64, &[f64], bool), SimulationError> {
        let event = self.advance(next_time)?;
        Ok((self.t, &self.x, event))
    }
}

impl<T> std::fmt::Debug for Bdf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bdf")
            .field("time", &self.t)
            .field("step_size", &self.h)
            .field("order", &self.order)
            .field("relative_tolerance", &self.rtol)
            .field("accepted_steps", &self.n_accepted)
            .field("rejected_steps", &self.n_rejected)
            .field("max_order_used", &self.max_order_used)
            .finish_non_exhaustive()
    }
}

/// RMS of v_i / scale_i.
fn rms_scaled(v: &[f64], scale: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let sum: f64 = v.iter().zip(scale).map(|(v, s)| (v / s).powi(2)).sum();
    (sum / v.len() as f64).sqrt()
}

/// Shampine & Reichelt's R(factor)·U (U = R(1)): rewrites differences at spacing h into
/// differences at spacing factor·h, for orders up to `order`. Row i, column j.
// Matrix index arithmetic, written as the formulas are.
#[allow(clippy::needless_range_loop)]
fn change_matrix(order: usize, factor: f64) -> [[f64; MAX_ORDER + 1]; MAX_ORDER + 1] {
    let r = r_matrix(order, factor);
    let u = r_matrix(order, 1.0);
    let mut ru = [[0.0; MAX_ORDER + 1]; MAX_ORDER + 1];
    for i in 0..=order {
        for j in 0..=order {
            ru[i][j] = (0..=order).map(|k| r[i][k] * u[k][j]).sum();
        }
    }
    // D_new[j] = Σ_i (RU)[i][j] · D_old[i] is RUᵀ·D: the caller sums over i.
    ru
}

/// R_{ij} = Π_{m=1..i} (m − 1 − factor·j) / m, with R_{0j} = 1.
// Matrix index arithmetic, written as the formulas are.
#[allow(clippy::needless_range_loop)]
fn r_matrix(order: usize, factor: f64) -> [[f64; MAX_ORDER + 1]; MAX_ORDER + 1] {
    let mut r = [[0.0; MAX_ORDER + 1]; MAX_ORDER + 1];
    for j in 0..=order {
        r[0][j] = 1.0;
    }
    for i in 1..=order {
        for j in 0..=order {
            let m = if j == 0 {
                0.0
            } else {
                (i as f64 - 1.0 - factor * j as f64) / i as f64
            };
            r[i][j] = r[i - 1][j] * m;
        }
    }
    r
}

/// LU factorization with partial pivoting of the n×n row-major matrix `a`, in place; the
/// row swapped into place at step k is `perm[k]`. `false` if a pivot is zero (singular).
pub(super) fn lu_factor(a: &mut [f64], perm: &mut [usize], n: usize) -> bool {
    for k in 0..n {
        let p = (k..n)
            .max_by(|&i, &j| a[i * n + k].abs().total_cmp(&a[j * n + k].abs()))
            .unwrap_or(k);
        let pivot = a[p * n + k];
        if pivot == 0.0 || !pivot.is_finite() {
            return false;
        }
        perm[k] = p;
        if p != k {
            for j in 0..n {
                a.swap(k * n + j, p * n + j);
            }
        }
        for i in k + 1..n {
            let l = a[i * n + k] / pivot;
            a[i * n + k] = l;
            if l != 0.0 {
                for j in k + 1..n {
                    a[i * n + j] -= l * a[k * n + j];
                }
            }
        }
    }
    true
}

/// Solves (LU) x = b in place for factors from [`lu_factor`].
pub(super) fn lu_solve(lu: &[f64], perm: &[usize], n: usize, b: &mut [f64]) {
    // The factorization swapped whole rows (L's columns included), so the swaps apply to b
    // first, all of them, in order.
    for (k, &p) in perm.iter().enumerate().take(n) {
        b.swap(k, p);
    }
    for k in 0..n {
        let bk = b[k];
        if bk != 0.0 {
            for i in k + 1..n {
                b[i] -= lu[i * n + k] * bk;
            }
        }
    }
    for k in (0..n).rev() {
        let mut sum = b[k];
        for j in k + 1..n {
            sum -= lu[k * n + j] * b[j];
        }
        b[k] = sum / lu[k * n + k];
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::RefCell;

    use fmi_rs::sim::solver::DummyDae;

    use super::*;

    type TestResult = Result<(), SimulationError>;

    /// A test system: x' = rhs(t, x) from `x0`, with an optional event indicator. `state`
    /// is what `init` reads, so a test can apply an event reset before `reset`.
    pub(in crate::sim) struct System {
        pub rhs: fn(f64, &[f64], &mut [f64]),
        pub indicator: Option<fn(f64, &[f64]) -> f64>,
        pub state: RefCell<Vec<f64>>,
    }

    impl System {
        pub fn new(x0: &[f64], rhs: fn(f64, &[f64], &mut [f64])) -> Self {
            Self {
                rhs,
                indicator: None,
                state: RefCell::new(x0.to_vec()),
            }
        }
    }

    impl Ode for System {
        fn nx(&self) -> usize {
            self.state.borrow().len()
        }
        fn nz(&self) -> usize {
            usize::from(self.indicator.is_some())
        }
        fn init(&self, x: &mut [f64], nominals: &mut [f64]) -> TestResult {
            x.copy_from_slice(&self.state.borrow());
            nominals.fill(1.0);
            Ok(())
        }
        fn f(&self, t: f64, x: &[f64], der_x: &mut [f64]) -> TestResult {
            (self.rhs)(t, x, der_x);
            Ok(())
        }
        fn g(&self, t: f64, x: &[f64], z: &mut [f64]) -> TestResult {
            if let Some(indicator) = self.indicator {
                z[0] = indicator(t, x);
            }
            Ok(())
        }
        fn supports_jacobian(&self) -> bool {
            false
        }
        fn jacobian(&self, _t: f64, _x: &[f64], _j: &mut [f64]) -> TestResult {
            Err(SimulationError::Solver("no Jacobian in tests".to_owned()))
        }
    }

    fn bdf(system: System, rtol: f64) -> Result<Bdf<System>, SimulationError> {
        Bdf::new(system, 0.0, rtol, &BdfFactory::default())
    }

    /// x' = -x: every output point against exp(-t), and the order climbs to 5 on the way.
    #[test]
    fn decay_matches_its_closed_form_and_reaches_order_five() -> TestResult {
        let mut solver = bdf(System::new(&[1.0], |_, x, d| d[0] = -x[0]), 1e-9)?;
        let mut worst: f64 = 0.0;
        for i in 1..=20 {
            let t = f64::from(i) * 0.5;
            let (reached, x, event) = solver.step(t)?;
            assert_eq!((reached, event), (t, false));
            worst = worst.max((x[0] - (-t).exp()).abs());
        }
        println!("decay: worst error {worst:.3e}, {solver:?}");
        assert!(worst < 1e-7, "{worst}");
        assert_eq!(solver.max_order_used, MAX_ORDER);
        Ok(())
    }

    /// Each order's formula on x' = -x is exact for polynomials of its degree: held at one
    /// order with equal steps, the global error falls as h^order.
    #[test]
    fn each_order_converges_at_its_rate() {
        for order in 1..=MAX_ORDER {
            let errors: Vec<f64> = [0.02, 0.01]
                .iter()
                .map(|&h| fixed_order_error(order, h))
                .collect();
            let rate = (errors[0] / errors[1]).log2();
            println!("order {order}: errors {errors:?}, observed rate {rate:.2}");
            assert!(
                (rate - order as f64).abs() < 0.35,
                "order {order}: rate {rate}"
            );
        }
    }

    /// Integrates x' = -x to t = 1 at a fixed order and step (started from exact history)
    /// and returns |x(1) - e^-1|.
    fn fixed_order_error(order: usize, h: f64) -> f64 {
        let mut solver = bdf(System::new(&[1.0], |_, x, d| d[0] = -x[0]), 1e-3).unwrap();
        let n_start = order;
        // Exact history at t = n_start·h, …, 0, as backward differences at spacing h.
        let t0 = n_start as f64 * h;
        let mut values: Vec<f64> = (0..=n_start)
            .map(|j| (-(t0 - j as f64 * h)).exp())
            .collect();
        solver.diffs.fill(0.0);
        for i in 0..=n_start {
            solver.diffs[i] = values[0];
            for j in 0..values.len() - 1 {
                values[j] -= values[j + 1];
            }
            values.pop();
        }
        solver.t = t0;
        solver.x[0] = solver.diffs[0];
        solver.order = order;
        solver.h = Some(h);
        solver.restart = false;
        let steps = ((1.0 - t0) / h).round() as usize;
        for _ in 0..steps {
            solver.equal_steps = 0; // never adapt: the order and step stay fixed
            let next = solver.t + h;
            let tol = 1e-12;
            solver.predict.fill(0.0);
            let a = alpha(order);
            let mut psi = 0.0;
            let mut predict = 0.0;
            for i in 0..=order {
                predict += solver.diffs[i];
                if i >= 1 {
                    psi += gamma(i) / a * solver.diffs[i];
                }
            }
            solver.predict[0] = predict;
            solver.psi[0] = psi;
            solver.scale[0] = 1e-12;
            solver.jac[0] = -1.0;
            assert!(solver.factor(h / a));
            assert!(solver.solve_implicit(next, h / a, tol).unwrap().is_some());
            solver.accept(next);
        }
        (solver.x[0] - (-1.0_f64).exp()).abs()
    }

    /// x' = -1e4 (x - cos t) - sin t, x(0) = 1: the solution is cos t, the transient mode
    /// decays at rate 1e4. An explicit method needs ~1e4 steps per unit of time; BDF follows
    /// cos t with steps of its own scale.
    #[test]
    fn stiff_linear_problem_is_cheap_and_accurate() -> TestResult {
        let mut solver = bdf(
            System::new(&[1.0], |t, x, d| d[0] = -1e4 * (x[0] - t.cos()) - t.sin()),
            1e-6,
        )?;
        let mut worst: f64 = 0.0;
        for i in 1..=100 {
            let t = f64::from(i) * 0.1;
            let (_, x, _) = solver.step(t)?;
            worst = worst.max((x[0] - t.cos()).abs());
        }
        println!("stiff linear: worst error {worst:.3e}, {solver:?}");
        assert!(worst < 1e-5, "{worst}");
        assert!(solver.n_accepted < 1500, "{solver:?}");
        Ok(())
    }

    /// A falling ball hits the floor at sqrt(2 h0 / g): the event is located on the
    /// interpolant, and after the reset (v := -v) the next one comes a full flight later.
    #[test]
    fn state_events_are_located_on_the_interpolant() -> TestResult {
        const G: f64 = 9.81;
        let mut system = System::new(&[1.0, 0.0], |_, x, d| {
            d[0] = x[1];
            d[1] = -G;
        });
        system.indicator = Some(|_, x| x[0]);
        let mut solver = bdf(system, 1e-8)?;
        let first = (2.0 / G).sqrt();
        let (t, x, event) = solver.step(2.0)?;
        let (h, v) = (x[0], x[1]);
        assert!(event, "no event before t = 2");
        println!("first bounce at {t}, expected {first}; {solver:?}");
        assert!((t - first).abs() < 1e-6, "{t}");
        assert!(h <= 0.0 && h > -1e-9, "{h}");
        *solver.ode.state.borrow_mut() = vec![h, -v];
        solver.reset(t)?;
        // Leaving the floor upwards crosses zero too (zero counts as negative): an event the
        // driver just resets at; the next fall lands a full flight later.
        loop {
            let (t2, x, event) = solver.step(2.0)?;
            assert!(event, "no second bounce before t = 2");
            let x = [x[0], x[1]];
            if x[1] < 0.0 {
                assert!((t2 - 3.0 * first).abs() < 1e-6, "{t2}");
                return Ok(());
            }
            *solver.ode.state.borrow_mut() = x.to_vec();
            solver.reset(t2)?;
        }
    }

    /// Derivatives that turn non-finite at t = 0.5: the solver stops there and says why.
    #[test]
    fn a_model_that_blows_up_is_an_error_naming_the_time() -> TestResult {
        let mut solver = bdf(
            System::new(&[1.0], |t, _, d| {
                d[0] = if t > 0.5 { f64::NAN } else { 1.0 }
            }),
            1e-6,
        )?;
        match solver.step(1.0) {
            Err(SimulationError::Solver(message)) => {
                println!("{message}");
                let at = message
                    .split("at t = ")
                    .nth(1)
                    .and_then(|rest| rest.split([' ', ':']).next())
                    .and_then(|t| t.parse::<f64>().ok());
                assert!(
                    message.starts_with("step size underflow at t = ")
                        || message.starts_with("Newton iteration failed to converge at t = "),
                    "{message}"
                );
                assert!(at.is_some_and(|t| (t - 0.5).abs() < 1e-9), "{message}");
            }
            other => panic!("expected a solver error, got {:?}", other.map(|r| r.0)),
        }
        Ok(())
    }

    #[test]
    fn lu_solves_a_system_that_needs_pivoting() {
        let mut a = vec![0.0, 2.0, 1.0, 1.0, 1.0, 0.0, 3.0, 0.0, 1.0];
        let x = [1.0, -2.0, 3.0];
        let b: Vec<f64> = (0..3)
            .map(|i| (0..3).map(|j| a[i * 3 + j] * x[j]).sum())
            .collect();
        let mut perm = [0; 3];
        assert!(lu_factor(&mut a, &mut perm, 3));
        let mut solved = b.clone();
        lu_solve(&a, &perm, 3, &mut solved);
        for (s, x) in solved.iter().zip(x) {
            assert!((s - x).abs() < 1e-14, "{solved:?}");
        }
        let mut singular = vec![1.0, 2.0, 2.0, 4.0];
        assert!(!lu_factor(&mut singular, &mut [0; 2], 2));
    }

    #[test]
    fn rejects_daes_and_bad_settings() {
        let system = || System::new(&[1.0], |_, x, d| d[0] = -x[0]);
        let factory = BdfFactory::default();
        assert!(factory.create(0.0, 1e-6, system(), Some(DummyDae)).is_err());
        assert!(
            factory
                .create(0.0, 0.0, system(), None::<DummyDae>)
                .is_err()
        );
        let bad = BdfFactory {
            max_step: Some(-1.0),
        };
        assert!(bad.create(0.0, 1e-6, system(), None::<DummyDae>).is_err());
    }
}
