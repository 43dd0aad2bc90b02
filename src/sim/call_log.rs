//! Logging as fmusim offers it: every FMI call the engine makes, with its arguments and
//! status (`--log-fmi-calls`), and the FMU's own log categories to enable.
//!
//! fmi-rs formats each call (`fmi3DoStep(currentCommunicationPoint=0, …) -> Ok`) and hands
//! it to the instance's logger; ours, [`BoundedLogger`], writes the calls to the run's log
//! file until [`CALL_LOG_BYTES`] of them, then says once that it stopped, so a long run's call
//! log grows neither the scratch file (a tmpfs: memory) nor the log sent back without bound.
//! The FMU's own messages are written as fmi-rs's default logger writes them.
//!
//! Runs that fmi-rs's own driver makes (Model Exchange; FMI 3 Co-Simulation options or
//! structural parameters) create their logger inside fmi-rs, where it cannot be bounded:
//! their calls are not recorded, and the log says so once ([`DRIVER_CALLS_NOT_RECORDED`]).

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use super::plan::RunSettings;
use super::protocol::Interface;
use crate::fmi::describe::ModelInfo;

/// Most bytes of FMI calls one run's log records; the log sent back keeps at most the job's
/// `log_limit` of it (its start and its end).
pub const CALL_LOG_BYTES: usize = 1 << 20;

/// What the log says when fmi-rs's driver makes the run's calls.
pub const DRIVER_CALLS_NOT_RECORDED: &str = "[FMI] this run's FMI calls are made inside fmi-rs's driver (Model Exchange, FMI 3 Co-Simulation options or structural parameters), which cannot record them within a bound: they are not recorded";

/// What a run asks of the log.
#[derive(Clone, Debug, Default)]
pub struct LogSettings {
    /// Record every FMI call with its arguments and status.
    pub fmi_calls: bool,
    /// The FMU's log categories to enable (all, as before, when empty).
    pub categories: Vec<String>,
}

impl LogSettings {
    /// What is wrong with these settings for this model, as (field, message): a category the
    /// model does not declare (naming the ones it does), or categories where they cannot be
    /// set (FMI 2, whose `fmi2SetDebugLogging` fmi-rs does not expose, and fmi-rs's driver).
    pub fn problems(&self, info: &ModelInfo, fast_loop: bool) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for name in &self.categories {
            if !info.log_categories.contains(name) {
                let known = if info.log_categories.is_empty() {
                    "it declares none".to_string()
                } else {
                    format!("it declares {}", info.log_categories.join(", "))
                };
                problems.push((
                    format!("log_categories.{name}"),
                    format!("the model has no log category '{name}': {known}"),
                ));
            }
        }
        if !self.categories.is_empty() && problems.is_empty() {
            if !info.is_fmi3() {
                problems.push((
                    "log_categories".into(),
                    "log categories can be chosen for FMI 3 models only (fmi-rs does not expose fmi2SetDebugLogging)".into(),
                ));
            } else if !fast_loop {
                problems.push((
                    "log_categories".into(),
                    "log categories can be chosen in Co-Simulation runs without FMI 3 Co-Simulation options or structural parameters only: the others run in fmi-rs's driver, which enables every category".into(),
                ));
            }
        }
        problems
    }
}

/// Whether the engine's own Co-Simulation loop runs these settings (rather than fmi-rs's
/// driver): Co-Simulation, without FMI 3 Co-Simulation options or structural parameters.
pub fn fast_loop(info: &ModelInfo, interface: Interface, settings: &RunSettings) -> bool {
    let structural = info.is_fmi3()
        && settings.start_values.iter().any(|(n, _)| {
            info.resolve(n)
                .is_some_and(|v| v.causality == "structuralParameter")
        });
    interface == Interface::Cs && settings.cs_options.is_default() && !structural
}

/// The run's log file, with FMI calls bounded to [`CALL_LOG_BYTES`].
pub struct BoundedLogger {
    file: Mutex<std::io::BufWriter<std::fs::File>>,
    calls: Mutex<CallBudget>,
}

/// How much of the call log is left.
struct CallBudget {
    left: usize,
    stopped: bool,
}

impl BoundedLogger {
    pub fn create(path: &Path) -> std::io::Result<BoundedLogger> {
        Ok(BoundedLogger {
            file: Mutex::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
            calls: Mutex::new(CallBudget {
                left: CALL_LOG_BYTES,
                stopped: false,
            }),
        })
    }

    fn write_line(&self, line: &str) {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // The FMU's code runs in this process and may end it at any moment: each line goes
        // to the file at once.
        let _ = writeln!(file, "{line}").and_then(|()| file.flush());
    }

    /// Records one call, or says once that the call log reached its bound.
    fn call(&self, message: &str) {
        let line = format!("[FMI] {message}");
        let mut budget = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        if budget.stopped {
            return;
        }
        if line.len() + 1 > budget.left {
            budget.stopped = true;
            drop(budget);
            self.write_line(&format!(
                "[FMI] … the FMI call log reached its limit of {CALL_LOG_BYTES} bytes: later calls are not recorded"
            ));
            return;
        }
        budget.left -= line.len() + 1;
        drop(budget);
        self.write_line(&line);
    }

    fn message(&self, prefix: &str, category: &str, message: &str) {
        self.write_line(&format!("{prefix} [{category}] {}", message.trim_end()));
    }
}

impl fmi_rs::fmi3::log::Logger for BoundedLogger {
    fn log_call(&self, _status: fmi_rs::fmi3::types::fmi3Status, message: &str) {
        self.call(message);
    }

    fn log_message(&self, status: fmi_rs::fmi3::types::fmi3Status, category: &str, message: &str) {
        use fmi_rs::fmi3::types::fmi3Status as S;
        let prefix = match status {
            S::Ok => "[INFO]",
            S::Warning => "[WARNING]",
            S::Error => "[ERROR]",
            S::Discard => "[DISCARD]",
            S::Fatal => "[FATAL]",
        };
        self.message(prefix, category, message);
    }
}

impl fmi_rs::fmi2::log::Logger for BoundedLogger {
    fn log_call(&self, _status: fmi_rs::fmi2::types::fmi2Status, message: &str) {
        self.call(message);
    }

    fn log_message(&self, status: fmi_rs::fmi2::types::fmi2Status, category: &str, message: &str) {
        use fmi_rs::fmi2::types::fmi2Status as S;
        let prefix = match status {
            S::Ok => "[INFO]",
            S::Warning => "[WARNING]",
            S::Discard => "[DISCARD]",
            S::Error => "[ERROR]",
            S::Fatal => "[FATAL]",
            S::Pending => "[PENDING]",
        };
        self.message(prefix, category, message);
    }
}

/// Appends the freeing of the instance to the call log (fmi-rs frees it when it drops it,
/// without logging the call), unless the log already holds the call log's bound.
pub fn note_free(log_path: &Path, prefix: &str) {
    let full = std::fs::metadata(log_path).map_or(true, |m| m.len() >= CALL_LOG_BYTES as u64);
    if !full {
        let _ = std::fs::OpenOptions::new()
            .append(true)
            .open(log_path)
            .and_then(|mut file| writeln!(file, "[FMI] {prefix}FreeInstance()"));
    }
}

/// Appends the driver's note to the run's log (after the driver, which creates the file).
pub fn note_driver_calls(log_path: &Path) {
    let _ = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log_path)
        .and_then(|mut file| writeln!(file, "{DRIVER_CALLS_NOT_RECORDED}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many calls a run makes, the call log stops at its bound and says so once.
    #[test]
    fn the_call_log_stops_at_its_bound_and_says_so_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fmu.log");
        let logger = BoundedLogger::create(&path).unwrap();
        let call = "fmi3DoStep(currentCommunicationPoint=0, communicationStepSize=0.1) -> Ok";
        for _ in 0..(CALL_LOG_BYTES / call.len()) * 3 {
            fmi_rs::fmi3::log::Logger::log_call(&logger, fmi_rs::fmi3::types::fmi3Status::Ok, call);
        }
        fmi_rs::fmi3::log::Logger::log_message(
            &logger,
            fmi_rs::fmi3::types::fmi3Status::Error,
            "logStatusError",
            "still logged",
        );
        drop(logger);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() <= CALL_LOG_BYTES + 1024, "{} bytes", text.len());
        assert_eq!(text.matches("reached its limit").count(), 1);
        assert!(text.ends_with("[ERROR] [logStatusError] still logged\n"));
    }
}
