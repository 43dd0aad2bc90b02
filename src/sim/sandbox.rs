//! The sandbox a worker puts itself in before it loads an FMU: resource limits, no network,
//! no new processes, a filesystem view limited to the FMU and its scratch directory.
//!
//! Layers, each applied where the kernel allows it (the list of active ones is reported to
//! the parent and logged at start-up):
//! - rlimits: address space, CPU seconds, file size, open files, no core dumps (required);
//! - a new user + network namespace: no network interfaces but a down loopback;
//! - `RLIMIT_NPROC` = 1 inside that namespace: no new processes or threads (root ignores
//!   this limit outside a user namespace);
//! - Landlock: read-only access to the FMU and the system libraries, read-write to scratch;
//! - seccomp: sockets, process creation, exec, ptrace and mounting are refused.
//!
//! This must run in a single-threaded process (unsharing a user namespace requires it), and
//! must never be called in the server.

use std::collections::BTreeMap;
use std::path::Path;

/// Resource limits for one worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub address_space_bytes: u64,
    pub cpu_seconds: u64,
    pub file_size_bytes: u64,
    pub open_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            address_space_bytes: 2 << 30,
            cpu_seconds: 60,
            file_size_bytes: 64 << 20,
            open_files: 64,
        }
    }
}

/// Applies every layer it can; returns the names of the active ones. Fails only when the
/// required layer (rlimits) cannot be applied.
pub fn enter(fmu_dir: &Path, scratch_dir: &Path, limits: &Limits) -> Result<Vec<String>, String> {
    let mut active = Vec::new();
    // SAFETY: prctl with an integer argument; no memory is passed.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let namespaced = unshare_user_and_net();
    if namespaced {
        active.push("user+network namespace".to_string());
    }
    set_rlimits(limits, namespaced)?;
    active.push(
        if namespaced {
            "rlimits (incl. no new processes)"
        } else {
            "rlimits"
        }
        .to_string(),
    );
    match landlock(fmu_dir, scratch_dir) {
        Ok(status) => active.push(status),
        Err(e) => tracing::debug!(error = %e, "landlock unavailable"),
    }
    match seccomp() {
        Ok(()) => active.push("seccomp".to_string()),
        Err(e) => tracing::debug!(error = %e, "seccomp unavailable"),
    }
    Ok(active)
}

fn unshare_user_and_net() -> bool {
    // SAFETY: unshare takes flags only; the process is single-threaded (see module docs).
    unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) == 0 }
}

fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64, name: &str) -> Result<(), String> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads the struct we pass by reference.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(format!(
            "cannot set {name}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn set_rlimits(limits: &Limits, namespaced: bool) -> Result<(), String> {
    set_rlimit(libc::RLIMIT_AS, limits.address_space_bytes, "RLIMIT_AS")?;
    set_rlimit(libc::RLIMIT_CPU, limits.cpu_seconds, "RLIMIT_CPU")?;
    set_rlimit(libc::RLIMIT_FSIZE, limits.file_size_bytes, "RLIMIT_FSIZE")?;
    set_rlimit(libc::RLIMIT_NOFILE, limits.open_files, "RLIMIT_NOFILE")?;
    set_rlimit(libc::RLIMIT_CORE, 0, "RLIMIT_CORE")?;
    if namespaced {
        set_rlimit(libc::RLIMIT_NPROC, 1, "RLIMIT_NPROC")?;
    }
    Ok(())
}

fn landlock(fmu_dir: &Path, scratch_dir: &Path) -> Result<String, String> {
    use landlock::{
        ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
        path_beneath_rules,
    };
    let abi = ABI::V5;
    let system = [
        "/lib",
        "/lib64",
        "/usr/lib",
        "/usr/lib64",
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
    ];
    let mut read_only: Vec<&Path> = system
        .iter()
        .map(Path::new)
        .filter(|p| p.exists())
        .collect();
    read_only.push(fmu_dir);
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(&read_only, AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules([scratch_dir], AccessFs::from_all(abi))))
        .and_then(|r| r.restrict_self())
        .map_err(|e| e.to_string())?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok("landlock".to_string()),
        RulesetStatus::PartiallyEnforced => Ok("landlock (partial)".to_string()),
        RulesetStatus::NotEnforced => Err("landlock is not enforced by this kernel".to_string()),
    }
}

fn seccomp() -> Result<(), String> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    let arch = TargetArch::x86_64;
    let denied = [
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_setns,
        libc::SYS_unshare,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_reboot,
    ];
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = denied.iter().map(|&n| (n, vec![])).collect();
    // clone() for a new process (no CLONE_THREAD flag) is refused; threads are still limited
    // by RLIMIT_NPROC.
    let not_a_thread = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        0,
    )
    .map_err(|e| e.to_string())?;
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![not_a_thread]).map_err(|e| e.to_string())?],
    );
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    // clone3's flags are behind a pointer, which seccomp cannot read: answer "not
    // implemented" so libc falls back to clone(), which the rule above inspects.
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, vec![])]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    for filter in [deny, clone3] {
        let program: seccompiler::BpfProgram = filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| e.to_string())?;
        seccompiler::apply_filter(&program).map_err(|e| e.to_string())?;
    }
    Ok(())
}
