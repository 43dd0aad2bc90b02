//! The sandbox a worker puts itself in before it loads an FMU. Uploaded FMUs are code from
//! strangers, so every layer assumes the one before it failed.
//!
//! Layers, in the order they are applied (each is checked by trying what it forbids; the
//! statuses are reported to the parent, and the server refuses to start when a required one
//! is missing, unless told `--allow-weaker-sandbox`):
//! - [`Layer::OomScore`]: `oom_score_adj` = 1000, so the kernel's OOM killer takes a worker
//!   before the server;
//! - [`Layer::ScratchTmpfs`]: a private mount namespace with a size-limited tmpfs on `/tmp`,
//!   holding the run's scratch directory and a bind mount of the FMU: "fill the disk" fills
//!   only that tmpfs, and it vanishes with the worker;
//! - [`Layer::OwnUid`]: a worker started as root switches to an unprivileged uid/gid
//!   (65534 by default), so even without namespaces it cannot signal, ptrace or read the
//!   files of the server (not applicable when the server itself is not root: then the PID
//!   namespace and the Landlock signal scope keep the worker away from it);
//! - [`Layer::NoNetwork`]: a new user + network namespace (no interfaces but a down loopback);
//! - [`Layer::PidNamespace`]: the worker forks once; the child is pid 1 of a new PID
//!   namespace, so `getppid()` is 0 and `kill(-1)` reaches only itself. The parent relays
//!   the child's end (same exit code, same signal) and the peak memory is still seen by
//!   the server's `wait4` (rusage includes reaped children);
//! - [`Layer::Rlimits`]: address space, CPU seconds, file size, open files, no core dumps,
//!   and at most [`MAX_FMU_THREADS`] threads (`RLIMIT_NPROC` inside the user namespace;
//!   new processes are seccomp's to refuse);
//! - [`Layer::LandlockFs`]: read-only access to the FMU and the system libraries, read-write
//!   to scratch, nothing else;
//! - [`Layer::LandlockScopes`]: no signals and no abstract unix sockets outside the sandbox
//!   (Landlock ABI 6);
//! - [`Layer::Seccomp`]: an allow-list of the system calls FMUs need ([`ALLOWED_SYSCALLS`]);
//!   anything else (sockets, io_uring, the x32 ABI, ptrace, …) fails with `EPERM`.
//!
//! This must run in a single-threaded process (unsharing a user namespace and forking
//! require it), and must never be called in the server.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Resource limits and sandbox settings for one worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    pub address_space_bytes: u64,
    pub cpu_seconds: u64,
    pub file_size_bytes: u64,
    pub open_files: u64,
    /// Size of the scratch tmpfs (files written by the FMU, its log included).
    #[serde(default = "default_scratch_bytes")]
    pub scratch_bytes: u64,
    /// The uid and gid a worker started as root switches to.
    #[serde(default = "default_worker_uid")]
    pub worker_uid: u32,
    /// Layers not to apply (for testing that the server refuses a weaker sandbox).
    #[serde(default)]
    pub disabled: LayerSet,
}

fn default_scratch_bytes() -> u64 {
    64 << 20
}

fn default_worker_uid() -> u32 {
    65534
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            address_space_bytes: 2 << 30,
            cpu_seconds: 60,
            file_size_bytes: 64 << 20,
            open_files: 64,
            scratch_bytes: default_scratch_bytes(),
            worker_uid: default_worker_uid(),
            disabled: LayerSet::default(),
        }
    }
}

/// One protection of the worker sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    OomScore,
    ScratchTmpfs,
    OwnUid,
    NoNetwork,
    PidNamespace,
    Rlimits,
    LandlockFs,
    LandlockScopes,
    Seccomp,
}

impl Layer {
    pub const ALL: [Layer; 9] = [
        Layer::OomScore,
        Layer::ScratchTmpfs,
        Layer::OwnUid,
        Layer::NoNetwork,
        Layer::PidNamespace,
        Layer::Rlimits,
        Layer::LandlockFs,
        Layer::LandlockScopes,
        Layer::Seccomp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Layer::OomScore => "oom_score",
            Layer::ScratchTmpfs => "scratch_tmpfs",
            Layer::OwnUid => "own_uid",
            Layer::NoNetwork => "no_network",
            Layer::PidNamespace => "pid_namespace",
            Layer::Rlimits => "rlimits",
            Layer::LandlockFs => "landlock_fs",
            Layer::LandlockScopes => "landlock_scopes",
            Layer::Seccomp => "seccomp",
        }
    }

    /// Whether the server may serve without this layer (only with `--allow-weaker-sandbox`
    /// otherwise). A separate uid needs a root server; a server that is not root already
    /// runs workers without its privileges, and the PID namespace and the Landlock signal
    /// scope keep them away from it.
    pub fn required(self, server_is_root: bool) -> bool {
        match self {
            Layer::OwnUid => server_is_root,
            _ => true,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A layer name that is not one of [`Layer::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown sandbox layer {name:?} (known: {})", Layer::ALL.map(Layer::name).join(", "))]
pub struct UnknownLayer {
    pub name: String,
}

impl FromStr for Layer {
    type Err = UnknownLayer;
    fn from_str(s: &str) -> Result<Self, UnknownLayer> {
        Layer::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| UnknownLayer { name: s.into() })
    }
}

/// A set of layers (a bit mask, so that [`Limits`] stays `Copy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct LayerSet(u16);

impl LayerSet {
    pub fn insert(&mut self, layer: Layer) {
        self.0 |= layer.bit();
    }

    pub fn contains(self, layer: Layer) -> bool {
        self.0 & layer.bit() != 0
    }

    /// A comma-separated list of layer names.
    pub fn parse(list: &str) -> Result<LayerSet, UnknownLayer> {
        let mut set = LayerSet::default();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            set.insert(name.parse()?);
        }
        Ok(set)
    }
}

/// Whether one layer is in force, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LayerStatus {
    pub layer: Layer,
    pub active: bool,
    /// How it was checked, or why it is missing.
    pub detail: String,
}

impl LayerStatus {
    fn active(layer: Layer, detail: impl Into<String>) -> Self {
        LayerStatus {
            layer,
            active: true,
            detail: detail.into(),
        }
    }

    fn missing(layer: Layer, why: impl fmt::Display) -> Self {
        LayerStatus {
            layer,
            active: false,
            detail: why.to_string(),
        }
    }

    /// The form sent in the worker's `Started` message and kept with each run:
    /// `name: detail` when active, `name missing: why` when not.
    pub fn to_wire(&self) -> String {
        if self.active {
            format!("{}: {}", self.layer, self.detail)
        } else {
            format!("{} missing: {}", self.layer, self.detail)
        }
    }

    /// Parses [`LayerStatus::to_wire`]; `None` for anything else.
    pub fn from_wire(s: &str) -> Option<LayerStatus> {
        let (head, detail) = s.split_once(": ").unwrap_or((s, ""));
        let (name, active) = match head.strip_suffix(" missing") {
            Some(name) => (name, false),
            None => (head, true),
        };
        Some(LayerStatus {
            layer: name.parse().ok()?,
            active,
            detail: detail.to_string(),
        })
    }
}

/// The required layers that `statuses` does not show as active (a layer the worker did not
/// mention at all is missing too).
pub fn missing_required(statuses: &[LayerStatus], server_is_root: bool) -> Vec<LayerStatus> {
    Layer::ALL
        .into_iter()
        .filter(|l| l.required(server_is_root))
        .filter_map(|layer| match statuses.iter().find(|s| s.layer == layer) {
            Some(s) if s.active => None,
            Some(s) => Some(s.clone()),
            None => Some(LayerStatus::missing(layer, "the worker did not report it")),
        })
        .collect()
}

/// Whether this process runs as root (then workers must switch to their own uid).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Threads an FMU may start (solvers and libraries parallelise; a bound keeps a thread bomb
/// small). New processes are refused by seccomp whatever this says.
pub const MAX_FMU_THREADS: u64 = 16;

/// Where the scratch tmpfs is mounted inside the worker's mount namespace (a directory
/// every system has and every uid may traverse).
const SANDBOX_ROOT: &str = "/tmp";

/// A step of entering the sandbox that failed, with the OS's (or the library's) error. Only
/// a failure to enter the scratch directory, to fork the PID namespace's init or to set the
/// rlimits stops [`enter`]; any other one becomes the reason its layer is reported missing.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("unshare: {0}")]
    Unshare(#[source] io::Error),
    #[error("{} contains a NUL byte", .0.display())]
    NulInPath(PathBuf),
    #[error("{0}")]
    NulInArgument(#[from] std::ffi::NulError),
    #[error("mount on {}: {source}", target.display())]
    Mount { target: PathBuf, source: io::Error },
    #[error("cannot open {}: {source}", path.display())]
    OpenFmu { path: PathBuf, source: io::Error },
    #[error("cannot create {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot hand scratch to uid {uid}: {source}")]
    HandOverScratch { uid: u32, source: io::Error },
    #[error("cannot write /proc/self/{file}: {source}")]
    MapIds {
        file: &'static str,
        source: io::Error,
    },
    #[error("cannot enter {}: {source}", path.display())]
    EnterScratch { path: PathBuf, source: io::Error },
    #[error("pipe: {0}")]
    Pipe(#[source] io::Error),
    #[error("fork: {0}")]
    Fork(#[source] io::Error),
    #[error("cannot set {name}: {source}")]
    Rlimit {
        name: &'static str,
        source: io::Error,
    },
    #[error("{0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error("Landlock is only partly enforced by this kernel (ABI < 6)")]
    LandlockPartlyEnforced,
    #[error("Landlock is not enforced by this kernel")]
    LandlockNotEnforced,
    #[error("{0}")]
    SeccompRules(#[from] seccompiler::BackendError),
    #[error("{0}")]
    SeccompInstall(#[from] seccompiler::Error),
}

/// What the sandboxed process works with.
pub struct Entered {
    pub layers: Vec<LayerStatus>,
    /// The FMU's directory as seen from inside the sandbox.
    pub fmu_dir: PathBuf,
    /// The scratch directory as seen from inside the sandbox.
    pub scratch_dir: PathBuf,
}

/// Applies every layer it can and returns in the sandboxed child (pid 1 of its PID
/// namespace); the original process stays outside as its relay and never returns from
/// here. Fails only when the rlimits cannot be applied; every other missing layer is
/// reported in [`Entered::layers`] for the server to judge.
pub fn enter(fmu_dir: &Path, scratch_dir: &Path, limits: &Limits) -> Result<Entered, SandboxError> {
    let mut layers = Vec::new();
    let skip = |layer: Layer, layers: &mut Vec<LayerStatus>| {
        let off = limits.disabled.contains(layer);
        if off {
            layers.push(LayerStatus::missing(layer, "disabled by configuration"));
        }
        off
    };
    // SAFETY: prctl with an integer argument; no memory is passed.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let as_root = running_as_root();
    // SAFETY: getters without arguments.
    let outside_ids = unsafe { (libc::getuid(), libc::getgid()) };
    if !skip(Layer::OomScore, &mut layers) {
        layers.push(oom_score());
    }

    // A root worker builds its mounts with its real privileges (it can reach the FMU
    // wherever the server keeps it), then drops them; an unprivileged one first becomes
    // root of a user namespace of its own, which lets it mount there.
    let mut paths = (fmu_dir.to_path_buf(), scratch_dir.to_path_buf());
    let mut namespaced = false;
    let want_mounts = !skip(Layer::ScratchTmpfs, &mut layers);
    let want_uid = as_root && !skip(Layer::OwnUid, &mut layers);
    let want_net = !skip(Layer::NoNetwork, &mut layers);
    let want_pid = !skip(Layer::PidNamespace, &mut layers);
    if as_root {
        if want_mounts {
            match unshare(libc::CLONE_NEWNS)
                .and_then(|()| mount_scratch(fmu_dir, limits, limits.worker_uid))
            {
                Ok(inside) => {
                    paths = inside;
                    layers.push(check_scratch(&paths.1, limits));
                }
                Err(e) => layers.push(LayerStatus::missing(Layer::ScratchTmpfs, e)),
            }
        }
        if want_uid {
            layers.push(switch_uid(limits.worker_uid));
        }
    } else {
        layers.push(LayerStatus::missing(
            Layer::OwnUid,
            "not applicable: the server is not root, so the worker has no privileges to drop",
        ));
    }
    let mut flags = libc::CLONE_NEWUSER;
    if want_net {
        flags |= libc::CLONE_NEWNET;
    }
    if want_pid {
        flags |= libc::CLONE_NEWPID;
    }
    if !as_root && want_mounts {
        flags |= libc::CLONE_NEWNS;
    }
    match unshare(flags) {
        Ok(()) => namespaced = true,
        Err(e) => {
            let why = format!("cannot create namespaces: {e}");
            if want_net {
                layers.push(LayerStatus::missing(Layer::NoNetwork, why.clone()));
            }
            if want_pid {
                layers.push(LayerStatus::missing(Layer::PidNamespace, why.clone()));
            }
            if !as_root && want_mounts {
                layers.push(LayerStatus::missing(Layer::ScratchTmpfs, why));
            }
        }
    }
    if namespaced && want_net {
        layers.push(check_no_network());
    }
    if namespaced && !as_root && want_mounts {
        match map_ids(outside_ids).and_then(|()| mount_scratch(fmu_dir, limits, 0)) {
            Ok(inside) => {
                paths = inside;
                layers.push(check_scratch(&paths.1, limits));
            }
            Err(e) => layers.push(LayerStatus::missing(Layer::ScratchTmpfs, e)),
        }
    }
    std::env::set_current_dir(&paths.1).map_err(|source| SandboxError::EnterScratch {
        path: paths.1.clone(),
        source,
    })?;

    // The PID namespace applies to children only: fork once, the child works.
    if namespaced && want_pid {
        relay_child_or_continue()?;
        layers.push(check_pid_namespace());
    }

    set_rlimits(limits, namespaced)?;
    layers.push(LayerStatus::active(
        Layer::Rlimits,
        if namespaced {
            "address space, CPU, file size, open files, no core dumps, at most 16 threads"
        } else {
            "address space, CPU, file size, open files, no core dumps (processes not limited)"
        },
    ));

    // An abstract socket made before Landlock: connecting to it afterwards must fail.
    let outside_socket = AbstractSocket::listen();
    let want_fs = !skip(Layer::LandlockFs, &mut layers);
    let want_scopes = !skip(Layer::LandlockScopes, &mut layers);
    if want_fs || want_scopes {
        match landlock(&paths.0, &paths.1, want_fs, want_scopes) {
            Ok(()) => {
                if want_fs {
                    layers.push(check_landlock_fs());
                }
                if want_scopes {
                    layers.push(check_landlock_scopes(outside_socket.as_ref()));
                }
            }
            Err(e) => {
                for (wanted, layer) in [
                    (want_fs, Layer::LandlockFs),
                    (want_scopes, Layer::LandlockScopes),
                ] {
                    if wanted {
                        layers.push(LayerStatus::missing(layer, &e));
                    }
                }
            }
        }
    }
    drop(outside_socket);
    if !skip(Layer::Seccomp, &mut layers) {
        layers.push(match seccomp() {
            Ok(()) => check_seccomp(),
            Err(e) => LayerStatus::missing(Layer::Seccomp, e),
        });
    }
    layers.sort_by_key(|s| s.layer);
    Ok(Entered {
        layers,
        fmu_dir: paths.0,
        scratch_dir: paths.1,
    })
}

fn os_error() -> io::Error {
    io::Error::last_os_error()
}

fn unshare(flags: libc::c_int) -> Result<(), SandboxError> {
    // SAFETY: unshare takes flags only; the process is single-threaded (see module docs).
    if unsafe { libc::unshare(flags) } == 0 {
        Ok(())
    } else {
        Err(SandboxError::Unshare(os_error()))
    }
}

fn oom_score() -> LayerStatus {
    let path = "/proc/self/oom_score_adj";
    match std::fs::write(path, "1000") {
        Err(e) => LayerStatus::missing(Layer::OomScore, format!("cannot write {path}: {e}")),
        Ok(()) => match std::fs::read_to_string(path) {
            Ok(v) if v.trim() == "1000" => {
                LayerStatus::active(Layer::OomScore, "oom_score_adj = 1000")
            }
            other => LayerStatus::missing(Layer::OomScore, format!("read back {other:?}")),
        },
    }
}

fn c_path(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| SandboxError::NulInPath(path.to_path_buf()))
}

fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> Result<(), SandboxError> {
    let source = CString::new(source)?;
    let target_c = c_path(target)?;
    let fstype = CString::new(fstype)?;
    let data = CString::new(data)?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(SandboxError::Mount {
            target: target.to_path_buf(),
            source: os_error(),
        })
    }
}

/// In a private mount namespace: a tmpfs of `limits.scratch_bytes` on [`SANDBOX_ROOT`] with
/// `scratch/` (owned by `owner`) and `fmu/` (a bind mount of the FMU). Returns the two paths.
fn mount_scratch(
    fmu_dir: &Path,
    limits: &Limits,
    owner: u32,
) -> Result<(PathBuf, PathBuf), SandboxError> {
    // Nothing mounted here may leak back to the host.
    mount(
        "none",
        Path::new("/"),
        "",
        libc::MS_REC | libc::MS_PRIVATE,
        "",
    )?;
    // The FMU may itself live under SANDBOX_ROOT: hold it open across the tmpfs mount.
    let fmu = std::fs::File::open(fmu_dir).map_err(|source| SandboxError::OpenFmu {
        path: fmu_dir.to_path_buf(),
        source,
    })?;
    let root = Path::new(SANDBOX_ROOT);
    // Small files cost an inode each: bound those too (one per 4 KiB of space).
    let inodes = (limits.scratch_bytes / 4096).max(64);
    mount(
        "fmu-scratch",
        root,
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        &format!("size={},nr_inodes={inodes},mode=0755", limits.scratch_bytes),
    )?;
    let inside_fmu = root.join("fmu");
    let inside_scratch = root.join("scratch");
    for dir in [&inside_fmu, &inside_scratch] {
        std::fs::create_dir(dir).map_err(|source| SandboxError::CreateDir {
            path: dir.clone(),
            source,
        })?;
    }
    std::os::unix::fs::chown(&inside_scratch, Some(owner), Some(owner))
        .map_err(|source| SandboxError::HandOverScratch { uid: owner, source })?;
    use std::os::fd::AsRawFd;
    mount(
        &format!("/proc/self/fd/{}", fmu.as_raw_fd()),
        &inside_fmu,
        "",
        libc::MS_BIND | libc::MS_REC,
        "",
    )?;
    Ok((inside_fmu, inside_scratch))
}

fn check_scratch(scratch: &Path, limits: &Limits) -> LayerStatus {
    const TMPFS_MAGIC: libc::c_long = 0x0102_1994;
    let Ok(path) = c_path(scratch) else {
        return LayerStatus::missing(Layer::ScratchTmpfs, "bad path");
    };
    // SAFETY: statfs writes into the zeroed struct we own.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut fs) } != 0 {
        return LayerStatus::missing(Layer::ScratchTmpfs, format!("statfs: {}", os_error()));
    }
    let size = fs.f_blocks as u64 * fs.f_bsize as u64;
    if fs.f_type as libc::c_long != TMPFS_MAGIC || size > limits.scratch_bytes {
        return LayerStatus::missing(
            Layer::ScratchTmpfs,
            format!(
                "scratch is not a tmpfs of at most {} bytes",
                limits.scratch_bytes
            ),
        );
    }
    LayerStatus::active(
        Layer::ScratchTmpfs,
        format!("scratch is a private tmpfs of {} MiB", size >> 20),
    )
}

/// Says so when the scratch space is used up (no bytes or no inodes left): why a run that
/// filled it failed, in words the user can act on.
pub fn scratch_full(scratch: &Path) -> Option<String> {
    let path = c_path(scratch).ok()?;
    // SAFETY: statfs writes into the zeroed struct we own.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut fs) } != 0 {
        return None;
    }
    let size_mib = (fs.f_blocks as u64 * fs.f_bsize as u64) >> 20;
    if fs.f_bavail == 0 {
        Some(format!("the run's scratch space of {size_mib} MiB is full"))
    } else if fs.f_files > 0 && fs.f_ffree == 0 {
        Some(format!(
            "the run's scratch space holds at most {} files and is full",
            fs.f_files
        ))
    } else {
        None
    }
}

/// Drops every privilege for `uid` (as uid and gid, with no supplementary groups), and
/// checks that they cannot be taken back.
fn switch_uid(uid: u32) -> LayerStatus {
    // SAFETY: plain calls with integer arguments.
    let ok = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setresgid(uid, uid, uid) == 0
            && libc::setresuid(uid, uid, uid) == 0
    };
    if !ok {
        return LayerStatus::missing(
            Layer::OwnUid,
            format!("cannot switch to uid {uid}: {}", os_error()),
        );
    }
    // SAFETY: as above.
    let (now, regained) = unsafe {
        // Keep /proc/self ours (a uid change makes it root's), for the namespace setup.
        libc::prctl(libc::PR_SET_DUMPABLE, 1);
        (libc::getuid(), libc::setuid(0) == 0)
    };
    if now != uid || regained {
        return LayerStatus::missing(
            Layer::OwnUid,
            format!("uid is {now} after switching to {uid}"),
        );
    }
    LayerStatus::active(
        Layer::OwnUid,
        format!("uid and gid {uid}, root cannot be regained"),
    )
}

/// Makes root of the new user namespace this process's uid and gid outside (`outside`,
/// read before the unshare; the only mapping an unprivileged process may write), so that
/// it may mount there.
fn map_ids(outside: (u32, u32)) -> Result<(), SandboxError> {
    let write = |file: &'static str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|source| SandboxError::MapIds { file, source })
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("0 {} 1", outside.0))?;
    write("gid_map", format!("0 {} 1", outside.1))
}

fn check_no_network() -> LayerStatus {
    // A UDP "connect" only needs a route: without interfaces there is none.
    let probe =
        std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect("192.0.2.1:9").map(|_| s));
    match probe {
        Ok(_) => LayerStatus::missing(Layer::NoNetwork, "a route to 192.0.2.1 exists"),
        Err(e) => LayerStatus::active(
            Layer::NoNetwork,
            format!("own network namespace (connecting: {e})"),
        ),
    }
}

/// Signals whose default action ends a process. As pid 1 of its namespace the child would
/// have them ignored (the kernel protects a namespace's init from its own signals), so an
/// FMU over its CPU limit would run on to the hard limit's SIGKILL, and `abort()` would read
/// as a segfault. The child catches them instead and tells the relay, which dies of the
/// same signal, so the server sees what it would have seen without the namespace.
const RELAYED_SIGNALS: [libc::c_int; 11] = [
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGABRT,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGALRM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGVTALRM,
    libc::SIGPROF,
];

/// The write end of the pipe on which the child names the signal that ended it.
static SIGNAL_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_fatal_signal(signal: libc::c_int) {
    let byte = signal as u8;
    // SAFETY: write and _exit are async-signal-safe; the buffer is on this stack.
    unsafe {
        libc::write(
            SIGNAL_PIPE.load(std::sync::atomic::Ordering::Relaxed),
            (&byte as *const u8).cast(),
            1,
        );
        libc::_exit(128 + signal);
    }
}

/// Forks; the parent waits for the child and ends as it ended, the child returns.
fn relay_child_or_continue() -> Result<(), SandboxError> {
    let mut pipe = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(SandboxError::Pipe(os_error()));
    }
    // SAFETY: the process is single-threaded, so the child may run anything after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SandboxError::Fork(os_error()));
    }
    if pid == 0 {
        SIGNAL_PIPE.store(pipe[1], std::sync::atomic::Ordering::Relaxed);
        // SAFETY: integer arguments and a handler that is a plain extern "C" function. If the
        // relay dies, so does the child (and with it, as pid 1, everything in its namespace).
        unsafe {
            libc::close(pipe[0]);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            for signal in RELAYED_SIGNALS {
                libc::signal(signal, on_fatal_signal as *const () as libc::sighandler_t);
            }
        }
        return Ok(());
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(pipe[1]) };
    relay(pid, pipe[0])
}

/// The outside half: waits for the child, then exits with its code or dies of its signal
/// (the one it died of, or the one it named on `signals` before exiting).
fn relay(pid: libc::pid_t, signals: libc::c_int) -> ! {
    let mut status = 0;
    // SAFETY: waitpid and read write into values we own; the later calls take integers.
    unsafe {
        while libc::waitpid(pid, &mut status, 0) < 0 {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                libc::_exit(125);
            }
        }
        let mut named = 0u8;
        libc::fcntl(signals, libc::F_SETFL, libc::O_NONBLOCK);
        let signal = if libc::WIFSIGNALED(status) {
            Some(libc::WTERMSIG(status))
        } else if libc::read(signals, (&mut named as *mut u8).cast(), 1) == 1
            && RELAYED_SIGNALS.contains(&libc::c_int::from(named))
        {
            Some(libc::c_int::from(named))
        } else {
            None
        };
        if let Some(signal) = signal {
            libc::signal(signal, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, signal);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(libc::WEXITSTATUS(status))
    }
}

fn check_pid_namespace() -> LayerStatus {
    // SAFETY: getters without arguments.
    let (pid, ppid) = unsafe { (libc::getpid(), libc::getppid()) };
    if pid == 1 && ppid == 0 {
        LayerStatus::active(
            Layer::PidNamespace,
            "pid 1 of its own PID namespace (getppid() = 0)",
        )
    } else {
        LayerStatus::missing(Layer::PidNamespace, format!("pid {pid}, parent {ppid}"))
    }
}

fn set_rlimit(
    resource: libc::__rlimit_resource_t,
    value: u64,
    name: &'static str,
) -> Result<(), SandboxError> {
    set_rlimit_pair(resource, value, value, name)
}

fn set_rlimit_pair(
    resource: libc::__rlimit_resource_t,
    soft: u64,
    hard: u64,
    name: &'static str,
) -> Result<(), SandboxError> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we pass by reference.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(SandboxError::Rlimit {
            name,
            source: os_error(),
        });
    }
    Ok(())
}

fn set_rlimits(limits: &Limits, namespaced: bool) -> Result<(), SandboxError> {
    set_rlimit(libc::RLIMIT_AS, limits.address_space_bytes, "RLIMIT_AS")?;
    // SIGXCPU at the soft limit says "CPU limit"; at the hard limit the kernel sends SIGKILL,
    // which would read as running out of memory, so the hard limit is a second later.
    set_rlimit_pair(
        libc::RLIMIT_CPU,
        limits.cpu_seconds,
        limits.cpu_seconds.saturating_add(1),
        "RLIMIT_CPU",
    )?;
    set_rlimit(libc::RLIMIT_FSIZE, limits.file_size_bytes, "RLIMIT_FSIZE")?;
    set_rlimit(libc::RLIMIT_NOFILE, limits.open_files, "RLIMIT_NOFILE")?;
    set_rlimit(libc::RLIMIT_CORE, 0, "RLIMIT_CORE")?;
    if namespaced {
        // Counted per user namespace (threads included): the relay, this process and the
        // FMU's own threads.
        set_rlimit(libc::RLIMIT_NPROC, 2 + MAX_FMU_THREADS, "RLIMIT_NPROC")?;
    }
    Ok(())
}

fn landlock(
    fmu_dir: &Path,
    scratch_dir: &Path,
    fs: bool,
    scopes: bool,
) -> Result<(), SandboxError> {
    use landlock::{
        ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
        path_beneath_rules,
    };
    let abi = ABI::V6;
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
    let mut ruleset = Ruleset::default();
    if fs {
        ruleset = ruleset.handle_access(AccessFs::from_all(abi))?;
    }
    if scopes {
        ruleset = ruleset.scope(Scope::from_all(abi))?;
    }
    let mut created = ruleset.create()?;
    if fs {
        created = created
            .add_rules(path_beneath_rules(&read_only, AccessFs::from_read(abi)))
            .and_then(|r| {
                r.add_rules(path_beneath_rules([scratch_dir], AccessFs::from_all(abi)))
            })?;
    }
    let status = created.restrict_self()?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(()),
        RulesetStatus::PartiallyEnforced => Err(SandboxError::LandlockPartlyEnforced),
        RulesetStatus::NotEnforced => Err(SandboxError::LandlockNotEnforced),
    }
}

fn check_landlock_fs() -> LayerStatus {
    match std::fs::read_dir("/") {
        Ok(_) => LayerStatus::missing(Layer::LandlockFs, "listing / still works"),
        Err(e) => LayerStatus::active(
            Layer::LandlockFs,
            format!("FMU read-only, scratch read-write, nothing else (listing /: {e})"),
        ),
    }
}

/// A listening abstract unix socket, made before Landlock restricts the process.
struct AbstractSocket {
    _listener: std::os::unix::net::UnixListener,
    name: String,
}

impl AbstractSocket {
    fn listen() -> Option<AbstractSocket> {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("fmu-gateway-probe-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).ok()?;
        let listener = std::os::unix::net::UnixListener::bind_addr(&addr).ok()?;
        Some(AbstractSocket {
            _listener: listener,
            name,
        })
    }
}

fn check_landlock_scopes(outside: Option<&AbstractSocket>) -> LayerStatus {
    use std::os::linux::net::SocketAddrExt;
    let Some(outside) = outside else {
        return LayerStatus::missing(Layer::LandlockScopes, "cannot make a socket to test with");
    };
    let connected = std::os::unix::net::SocketAddr::from_abstract_name(&outside.name)
        .and_then(|a| std::os::unix::net::UnixStream::connect_addr(&a));
    match connected {
        Ok(_) => LayerStatus::missing(
            Layer::LandlockScopes,
            "connected to an abstract socket made outside",
        ),
        Err(e) => LayerStatus::active(
            Layer::LandlockScopes,
            format!("no signals or abstract unix sockets outside (connecting: {e})"),
        ),
    }
}

/// The system calls a worker and its FMU may make (x86_64). Measured with strace on the
/// demo FMUs (FMI 2 and 3, CS and ME) and widened to what C/C++/Fortran runtimes of
/// third-party FMUs use (threads, time, random numbers, memory management, file I/O in the
/// places Landlock allows). A few more are allowed only with arguments, see [`seccomp`].
pub const ALLOWED_SYSCALLS: &[i64] = &[
    // memory
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_msync,
    libc::SYS_mincore,
    libc::SYS_membarrier,
    libc::SYS_memfd_create,
    // files (paths are Landlock's business)
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_lseek,
    libc::SYS_fstat,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_fstatfs,
    libc::SYS_statfs,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_getdents64,
    libc::SYS_getcwd,
    libc::SYS_chdir,
    libc::SYS_fchdir,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_fcntl,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_pipe,
    libc::SYS_pipe2,
    libc::SYS_ftruncate,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_fallocate,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_rmdir,
    libc::SYS_umask,
    libc::SYS_fchmod,
    libc::SYS_utimensat,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_select,
    libc::SYS_pselect6,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_eventfd2,
    // time
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    libc::SYS_time,
    libc::SYS_getitimer,
    libc::SYS_setitimer,
    libc::SYS_alarm,
    libc::SYS_timer_create,
    libc::SYS_timer_settime,
    libc::SYS_timer_gettime,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_delete,
    // this process and its threads
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_getppid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_getresuid,
    libc::SYS_getresgid,
    libc::SYS_getgroups,
    libc::SYS_getpgrp,
    libc::SYS_getrusage,
    libc::SYS_getrlimit,
    libc::SYS_getpriority,
    libc::SYS_uname,
    libc::SYS_sysinfo,
    libc::SYS_getcpu,
    libc::SYS_getrandom,
    libc::SYS_arch_prctl,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_getparam,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_rseq,
    libc::SYS_set_tid_address,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_sigsuspend,
    libc::SYS_sigaltstack,
    libc::SYS_pause,
];

/// `ioctl` requests allowed (terminal and non-blocking queries libc makes on stdio).
const ALLOWED_IOCTLS: &[u64] = &[
    libc::TCGETS,
    libc::TIOCGWINSZ,
    libc::FIONREAD,
    libc::FIONBIO,
    libc::FIOCLEX,
    libc::FIONCLEX,
];

/// `prctl` operations allowed (thread names, which runtimes set).
const ALLOWED_PRCTLS: &[u64] = &[libc::PR_SET_NAME as u64, libc::PR_GET_NAME as u64];

fn seccomp() -> Result<(), SandboxError> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    let arch = TargetArch::x86_64;
    let equal = |arg: u8, len: SeccompCmpArgLen, value: u64| -> Result<SeccompRule, SandboxError> {
        let condition = SeccompCondition::new(arg, len, SeccompCmpOp::Eq, value)?;
        Ok(SeccompRule::new(vec![condition])?)
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        ALLOWED_SYSCALLS.iter().map(|&n| (n, vec![])).collect();
    // Signals and limits only for this process (pid 0 means "myself" for prlimit64).
    // SAFETY: getpid has no arguments.
    let me = unsafe { libc::getpid() } as u32 as u64;
    use SeccompCmpArgLen::{Dword, Qword};
    rules.insert(libc::SYS_kill, vec![equal(0, Dword, me)?]);
    rules.insert(libc::SYS_tgkill, vec![equal(0, Dword, me)?]);
    rules.insert(
        libc::SYS_prlimit64,
        vec![equal(0, Dword, 0)?, equal(0, Dword, me)?],
    );
    rules.insert(
        libc::SYS_sched_setaffinity,
        vec![equal(0, Dword, 0)?, equal(0, Dword, me)?],
    );
    // Threads only: a clone without CLONE_THREAD would be a new process.
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            libc::CLONE_THREAD as u64,
        )?])?],
    );
    rules.insert(
        libc::SYS_ioctl,
        ALLOWED_IOCTLS
            .iter()
            .map(|&r| equal(1, Dword, r))
            .collect::<Result<_, _>>()?,
    );
    rules.insert(
        libc::SYS_prctl,
        ALLOWED_PRCTLS
            .iter()
            .map(|&op| equal(0, Dword, op))
            .collect::<Result<_, _>>()?,
    );
    // clone3's flags are behind a pointer, which seccomp cannot read: a first filter
    // answers "not implemented" so libc falls back to clone(), which the rule above
    // inspects. The allow-list (installed last, when no more filters are needed) lets
    // clone3 through to that answer: of two filters' verdicts, the kernel takes ERRNO
    // over ALLOW.
    rules.insert(libc::SYS_clone3, vec![]);
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, vec![])]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    let allow = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )?;
    for filter in [clone3, allow] {
        let program: seccompiler::BpfProgram = filter.try_into()?;
        seccompiler::apply_filter(&program)?;
    }
    Ok(())
}

/// Tries what the filter forbids: a socket, io_uring, ptrace, and a call through the x32
/// ABI must each fail with `EPERM`.
fn check_seccomp() -> LayerStatus {
    const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
    let attempts: [(&str, libc::c_long, [libc::c_long; 3]); 4] = [
        (
            "socket",
            libc::SYS_socket,
            [libc::AF_UNIX as _, libc::SOCK_STREAM as _, 0],
        ),
        ("io_uring_setup", libc::SYS_io_uring_setup, [1, 0, 0]),
        (
            "ptrace",
            libc::SYS_ptrace,
            [libc::PTRACE_TRACEME as _, 0, 0],
        ),
        ("x32 getpid", X32_SYSCALL_BIT | libc::SYS_getpid, [0, 0, 0]),
    ];
    for (name, number, [a, b, c]) in attempts {
        // SAFETY: each attempt is expected to be refused before it does anything; io_uring's
        // params pointer is null, so even if it ran it would fail with EFAULT.
        let rc = unsafe { libc::syscall(number, a, b, c) };
        let errno = std::io::Error::last_os_error().raw_os_error();
        if rc >= 0 || errno != Some(libc::EPERM) {
            return LayerStatus::missing(
                Layer::Seccomp,
                format!("{name} was not refused with EPERM (returned {rc}, errno {errno:?})"),
            );
        }
    }
    LayerStatus::active(
        Layer::Seccomp,
        format!(
            "allow-list of {} system calls (+7 with argument checks); socket, io_uring, ptrace, x32 refused",
            ALLOWED_SYSCALLS.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_status_survives_the_wire() {
        for status in [
            LayerStatus::active(Layer::Seccomp, "allow-list: 3 calls"),
            LayerStatus::missing(Layer::PidNamespace, "unshare: Operation not permitted"),
        ] {
            assert_eq!(LayerStatus::from_wire(&status.to_wire()), Some(status));
        }
        assert_eq!(
            LayerStatus::from_wire("seccomp"),
            Some(LayerStatus::active(Layer::Seccomp, ""))
        );
        assert_eq!(LayerStatus::from_wire("no such layer"), None);
    }

    #[test]
    fn unreported_and_missing_required_layers_are_found() {
        let reported: Vec<LayerStatus> = Layer::ALL
            .into_iter()
            .filter(|l| *l != Layer::Seccomp)
            .map(|l| {
                if l == Layer::OwnUid {
                    LayerStatus::missing(l, "not root")
                } else {
                    LayerStatus::active(l, "")
                }
            })
            .collect();
        let missing: Vec<Layer> = missing_required(&reported, false)
            .iter()
            .map(|s| s.layer)
            .collect();
        assert_eq!(missing, vec![Layer::Seccomp]);
        let missing: Vec<Layer> = missing_required(&reported, true)
            .iter()
            .map(|s| s.layer)
            .collect();
        assert_eq!(missing, vec![Layer::OwnUid, Layer::Seccomp]);
    }

    #[test]
    fn layer_sets_parse_names() {
        let set = LayerSet::parse("pid_namespace, seccomp").unwrap();
        assert!(set.contains(Layer::PidNamespace) && set.contains(Layer::Seccomp));
        assert!(!set.contains(Layer::Rlimits));
        assert!(
            LayerSet::parse("bogus")
                .unwrap_err()
                .to_string()
                .starts_with("unknown sandbox layer \"bogus\" (known: oom_score, ")
        );
    }
}
