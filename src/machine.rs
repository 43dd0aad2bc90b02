//! What this machine gives the service: memory (for how many workers fit) and free disk
//! space on the data volume (for the reserve settlement needs).
//!
//! Both are read from the kernel, never assumed: a container or a Fly machine has less
//! memory than the host it runs on, and a full volume must stop new work before it stops
//! settlement.

use std::path::Path;

use crate::config::Config;

/// Memory the server process itself is allowed for (requests, the database, two Argon2
/// hashes, result streaming), on top of its workers' limits.
pub const SERVER_MEMORY_BYTES: u64 = 256 << 20;

/// The memory this process may use: the smaller of the machine's RAM and a cgroup limit.
/// `None` if neither can be read (then nothing is checked).
pub fn memory_bytes() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total(&text));
    let cgroup = cgroup_limit();
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The memory limit of this process's cgroup (v2 `memory.max`, or v1
/// `memory.limit_in_bytes`), if it has one.
fn cgroup_limit() -> Option<u64> {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    // "max" (no limit) does not parse; v1 reports "no limit" as a huge number.
    read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .filter(|&limit| limit < (1 << 60))
}

/// What one worker may take of the machine's memory: its address-space limit, and its
/// scratch tmpfs (whose pages are memory, not address space).
pub fn worker_footprint(config: &Config) -> u64 {
    config
        .worker_memory_bytes
        .saturating_add(config.scratch_bytes)
}

/// How many workers to start when the operator did not say: as many as there are cores,
/// but no more than fit in memory beside the server (at least one; [`check_memory`] refuses
/// a machine where even one does not fit). `worker_memory` is [`worker_footprint`].
pub fn workers_that_fit(cores: usize, worker_memory: u64, machine: Option<u64>) -> usize {
    let Some(machine) = machine else {
        return cores.max(1);
    };
    let room = machine.saturating_sub(SERVER_MEMORY_BYTES);
    let fit = (room / worker_memory.max(1)).min(usize::MAX as u64) as usize;
    cores.min(fit).max(1)
}

/// Refuses a configuration whose workers, each at its memory limit, and the server would not
/// fit in this machine's memory: the kernel's OOM killer would then pick a victim (possibly
/// the server) instead of our limits failing the one run that used too much.
pub fn check_memory(config: &Config, machine: Option<u64>) -> Result<(), MemoryTooSmall> {
    let Some(machine) = machine else {
        return Ok(());
    };
    let workers = config.workers as u64;
    let needed = workers
        .saturating_mul(worker_footprint(config))
        .saturating_add(SERVER_MEMORY_BYTES);
    if needed <= machine {
        return Ok(());
    }
    Err(MemoryTooSmall {
        workers,
        worker_mib: config.worker_memory_bytes >> 20,
        scratch_mib: config.scratch_bytes >> 20,
        needed_mib: needed >> 20,
        machine_mib: machine >> 20,
    })
}

/// The workers at their limits and the server would not fit in this machine's memory; the
/// message says which settings to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{workers} worker(s) × ({worker_mib} MiB + {scratch_mib} MiB scratch) (FMU_GATEWAY_WORKERS × \
     (FMU_GATEWAY_WORKER_MEMORY_MB + FMU_GATEWAY_SCRATCH_MB)) plus {server_mib} MiB for the \
     server need {needed_mib} MiB, but this machine has {machine_mib} MiB: lower \
     FMU_GATEWAY_WORKERS or FMU_GATEWAY_WORKER_MEMORY_MB, or give the machine more memory",
    server_mib = SERVER_MEMORY_BYTES >> 20
)]
pub struct MemoryTooSmall {
    pub workers: u64,
    pub worker_mib: u64,
    pub scratch_mib: u64,
    pub needed_mib: u64,
    pub machine_mib: u64,
}

/// Bytes free for an unprivileged writer on the filesystem holding `dir`.
pub fn free_disk_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs writes into the zeroed struct we own; `path` is NUL-terminated.
    unsafe {
        let mut stats: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut stats) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
    }
}

/// Why new work must wait for disk space, if it must: the volume holding `dir` has less
/// than `reserve` bytes free (or cannot be measured).
pub fn disk_problem(dir: &Path, reserve: u64) -> Option<String> {
    reserve_problem(&free_disk_bytes(dir), reserve)
}

/// [`disk_problem`] for a measurement already taken (`/ready` reports it too).
pub fn reserve_problem(free: &std::io::Result<u64>, reserve: u64) -> Option<String> {
    match free {
        Ok(free) if *free >= reserve => None,
        Ok(free) => Some(format!(
            "the data volume is nearly full ({} MiB free, {} MiB are kept for settling runs): \
             new runs and uploads are paused",
            free >> 20,
            reserve >> 20
        )),
        Err(e) => Some(format!("cannot measure the data volume's free space: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_bytes() {
        let text = "MemTotal:       24576000 kB\nMemFree:        1000 kB\n";
        assert_eq!(mem_total(text), Some(24_576_000 * 1024));
        assert_eq!(mem_total("nothing"), None);
    }

    #[test]
    fn default_workers_are_capped_by_memory_but_never_zero() {
        let gib = 1u64 << 30;
        assert_eq!(workers_that_fit(8, 2 * gib, Some(24 * gib)), 8);
        assert_eq!(workers_that_fit(8, 2 * gib, Some(8 * gib)), 3);
        assert_eq!(workers_that_fit(8, 2 * gib, Some(gib / 2)), 1);
        assert_eq!(workers_that_fit(4, 2 * gib, None), 4);
    }

    #[test]
    fn a_configuration_that_does_not_fit_is_named() {
        let mut config = Config::local("/tmp".into());
        config.workers = 2;
        config.worker_memory_bytes = 2 << 30;
        config.scratch_bytes = 64 << 20;
        assert!(check_memory(&config, Some(8 << 30)).is_ok());
        let refused = check_memory(&config, Some(512 << 20))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("FMU_GATEWAY_WORKERS"), "{refused}");
        assert!(refused.contains("4480 MiB"), "{refused}");
        assert!(refused.contains("512 MiB"), "{refused}");
    }

    #[test]
    fn free_disk_space_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_disk_bytes(dir.path()).unwrap() > 0);
        assert!(disk_problem(dir.path(), 0).is_none());
        let problem = disk_problem(dir.path(), u64::MAX).unwrap();
        assert!(problem.contains("nearly full"), "{problem}");
    }
}
