//! Safe extraction of uploaded FMU archives.
//!
//! An FMU is a zip file that a user uploads, so everything in it is hostile until proven
//! otherwise. [`extract`] unpacks one into a fresh directory under hard limits: archive size,
//! entry count, per-entry and total uncompressed size (checked against the headers *and* against
//! the bytes actually produced), and compression ratio. Every entry name is validated before a
//! single byte is written.
//!
//! An entry listed more than once (some FMU exporters add files twice) is accepted when every
//! copy is the same kind of entry with the same size, CRC-32 and bytes: it is extracted once and
//! reported as an [`ArchiveWarning`]. Copies that differ are refused, because which one a tool
//! extracts would be a guess. The central directory is therefore read entry by entry, copies
//! included ([`ZipIterable`]), not through a map keyed by name that would keep only one of them.
//!
//! This module must never:
//! - write outside the destination directory (no absolute paths, no `..`, no drive letters or
//!   backslashes, no symbolic links, no device files or FIFOs);
//! - follow a symbolic link or overwrite an existing file (files are created with `create_new`);
//! - trust a size from a zip header without also counting the bytes it writes;
//! - leave a half-extracted tree behind: on any error the destination is emptied again.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zip::read::{Config, OwnedZipFileEntry};
use zip::unstable::read::ZipIterable;
use zip::{CompressionMethod, ZipReadOptions};

/// The name every FMU must have at the top of the archive.
pub const MODEL_DESCRIPTION: &str = "modelDescription.xml";

/// Entries smaller than this are exempt from the compression-ratio check: a small file of zeros
/// legitimately compresses a thousandfold and cannot hurt anyone, while the check exists to stop
/// entries that inflate to something large. The size limits still apply to them.
pub const RATIO_CHECK_MIN_BYTES: u64 = 1024 * 1024;

const MIB: u64 = 1024 * 1024;

/// File type bits of a unix mode (`S_IFMT`) and the two types an FMU may contain.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// How much an uploaded archive may cost us. The defaults fit the largest real FMUs we know of
/// (tens of MiB, a few hundred entries) with a wide margin, while keeping one upload from
/// filling the disk or a worker's time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Size of the .fmu file itself.
    pub max_archive_bytes: u64,
    /// Number of entries (files and directories) in the archive.
    pub max_entries: usize,
    /// Sum of all entries' uncompressed sizes.
    pub max_total_uncompressed: u64,
    /// Uncompressed size of any single entry.
    pub max_entry_uncompressed: u64,
    /// Uncompressed size / compressed size of any single entry of at least
    /// [`RATIO_CHECK_MIN_BYTES`].
    pub max_compression_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_archive_bytes: 100 * MIB,
            max_entries: 2_000,
            max_total_uncompressed: 500 * MIB,
            max_entry_uncompressed: 200 * MIB,
            max_compression_ratio: 200,
        }
    }
}

/// Why an archive was refused. Every message names the problem and, where there is one, the
/// offending entry, because it is shown to the user who uploaded the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    #[error("the archive is {}; the limit is {}", Bytes(*.size), Bytes(*.limit))]
    TooLarge { size: u64, limit: u64 },

    #[error("not a zip archive: {0}")]
    NotZip(String),

    #[error("the archive has {count} entries; the limit is {limit}")]
    TooManyEntries { count: usize, limit: usize },

    #[error("entry '{entry}' escapes the archive (.. or absolute path)")]
    PathEscapes { entry: String },

    #[error("entry '{entry}' has an invalid name: {reason}")]
    InvalidName { entry: String, reason: &'static str },

    /// The archive lists one name twice (or more) and the copies differ, so which one a tool
    /// extracts is a guess.
    #[error("entry '{entry}' appears twice with different contents ({difference})")]
    DuplicateDiffers {
        entry: String,
        difference: Difference,
    },

    /// Two entries land on one path, one as a file and the other as a folder: the same name
    /// twice with different types, or `a` and `a/`.
    #[error("{}", FileAndFolder { entry, other })]
    FileAndFolder {
        /// The later entry.
        entry: String,
        /// The earlier entry at the same path.
        other: String,
    },

    /// An entry of the central directory cannot be parsed; entries have no name until they are.
    #[error(
        "entry {position} of the archive's directory cannot be read{}: {detail}",
        After(.after)
    )]
    BadDirectoryEntry {
        /// 1-based position in the central directory.
        position: usize,
        /// The name of the entry before it, to find it by.
        after: Option<String>,
        detail: String,
    },

    #[error("entry '{entry}' is a symbolic link; links are not allowed")]
    Link { entry: String },

    #[error("entry '{entry}' is a {kind}; only files and directories are allowed")]
    SpecialFile { entry: String, kind: &'static str },

    #[error("entry '{entry}' is encrypted; encrypted archives are not supported")]
    Encrypted { entry: String },

    #[error(
        "entry '{entry}' uses compression method {method}; only stored and deflated entries are supported"
    )]
    UnsupportedCompression { entry: String, method: String },

    #[error("entry '{entry}' is {} uncompressed; the limit per file is {}", Bytes(*.size), Bytes(*.limit))]
    EntryTooLarge {
        entry: String,
        size: u64,
        limit: u64,
    },

    #[error(
        "the archive expands to more than its limit of {}: with entry '{entry}' it reaches {}",
        Bytes(*.limit), Bytes(*.size)
    )]
    TotalTooLarge {
        /// The entry that takes the running total over the limit.
        entry: String,
        size: u64,
        limit: u64,
    },

    #[error(
        "entry '{entry}' expands to more than {limit} times its compressed size ({} from {}): this looks like a zip bomb",
        Bytes(*.size), Bytes(*.compressed)
    )]
    CompressionRatio {
        entry: String,
        size: u64,
        compressed: u64,
        limit: u64,
    },

    #[error(
        "entry '{entry}' expands to more than the {} its header declares: this looks like a zip bomb",
        Bytes(*.declared)
    )]
    SizeMismatch { entry: String, declared: u64 },

    #[error("entry '{entry}' cannot be read: {detail}")]
    Corrupt { entry: String, detail: String },

    #[error("modelDescription.xml is missing at the top of the archive")]
    MissingModelDescription,

    #[error("the destination directory {0}")]
    Destination(&'static str),

    /// A local I/O failure (disk full, permissions); `context` names the entry, never a server
    /// path, because the message may reach the uploader.
    #[error("I/O error while extracting: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

/// How two copies of one entry differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    /// Their uncompressed sizes, as the headers declare them.
    Size { first: u64, second: u64 },
    /// Same size, different CRC-32 in the headers.
    Crc,
    /// Same size and CRC-32, but the bytes differ from this offset on (or one copy ends there).
    Bytes { offset: u64 },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Size { first, second } => {
                write!(f, "{} and {}", Bytes(*first), Bytes(*second))
            }
            Difference::Crc => f.write_str("same size, different CRC-32"),
            Difference::Bytes { offset } => {
                write!(
                    f,
                    "same size and CRC-32, different bytes from byte {offset}"
                )
            }
        }
    }
}

struct FileAndFolder<'a> {
    entry: &'a str,
    other: &'a str,
}

impl fmt::Display for FileAndFolder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.entry == self.other {
            write!(
                f,
                "entry '{}' appears twice, once as a file and once as a folder",
                self.entry
            )
        } else {
            write!(
                f,
                "entries '{}' and '{}' extract to the same path, one as a file and one as a folder",
                self.other, self.entry
            )
        }
    }
}

struct After<'a>(&'a Option<String>);

impl fmt::Display for After<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, " (the one after '{name}')"),
            None => Ok(()),
        }
    }
}

/// Something an archive does that we accept but its author may want to fix. It travels with
/// the FMU (the registry keeps it in the model info) so every answer about the FMU can show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ArchiveWarning {
    /// The entry is listed `copies` times, every copy identical (kind, size, CRC-32, bytes).
    DuplicateEntry { entry: String, copies: usize },
}

impl fmt::Display for ArchiveWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveWarning::DuplicateEntry { entry, copies } => write!(
                f,
                "entry '{entry}' appears {copies} times in the archive with identical contents; it was extracted once"
            ),
        }
    }
}

/// What [`extract`] accepted with a remark.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// In archive order; empty for a clean archive.
    pub warnings: Vec<ArchiveWarning>,
}

impl ArchiveError {
    fn io(context: impl Into<String>, source: io::Error) -> Self {
        ArchiveError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A byte count shown the way people read it ("150 MiB", "48.8 KiB", "12 bytes").
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: u64 = 1024;
        let n = self.0;
        let (unit, name) = if n >= MIB {
            (MIB, "MiB")
        } else if n >= KIB {
            (KIB, "KiB")
        } else {
            return write!(f, "{n} bytes");
        };
        if n.is_multiple_of(unit) {
            write!(f, "{} {name}", n / unit)
        } else {
            // Precision loss is irrelevant for a human-readable size.
            write!(f, "{:.1} {name}", n as f64 / unit as f64)
        }
    }
}

/// What an entry turns into on disk, decided before anything is written. The plan has one item
/// per central-directory entry, in the same order.
struct Planned {
    /// The name as stored in the archive, for messages.
    name: String,
    /// Relative path below the destination, made only of normal components.
    path: PathBuf,
    is_dir: bool,
    /// Uncompressed size from the central directory; the copy is capped at this.
    declared: u64,
    /// CRC-32 from the central directory (the zip reader checks the bytes against it).
    crc32: u32,
    /// The position in the plan of an earlier entry at the same path: this one is a copy,
    /// compared with what that one wrote instead of being written.
    copy_of: Option<usize>,
}

/// Extracts the FMU at `archive` into `dest` and checks that it has a top-level
/// `modelDescription.xml`. Returns what was accepted with a warning (identical duplicates).
///
/// `dest` should be a fresh directory the caller created (it is created if it does not exist);
/// it must be empty and must not be a symbolic link. On error `dest` is left empty, so the
/// caller can simply remove it.
pub fn extract(archive: &Path, dest: &Path, limits: &Limits) -> Result<Extracted, ArchiveError> {
    // Size first: refuse big uploads before the zip parser reads anything.
    let file = File::open(archive).map_err(|e| ArchiveError::io("cannot open the archive", e))?;
    let size = file
        .metadata()
        .map_err(|e| ArchiveError::io("cannot stat the archive", e))?
        .len();
    if size > limits.max_archive_bytes {
        return Err(ArchiveError::TooLarge {
            size,
            limit: limits.max_archive_bytes,
        });
    }

    let entries = central_directory(&file, limits)?;
    let plan = plan(&entries, limits)?;

    let created_dest = prepare_destination(dest)?;
    let mut reader = io::BufReader::new(&file);
    let result = write_entries(&mut reader, &entries, &plan, dest, limits);
    if result.is_err() {
        // Best effort: the original error is what the caller needs to see.
        if created_dest {
            let _ = fs::remove_dir_all(dest);
        } else {
            let _ = empty_directory(dest);
        }
    }
    result?;
    Ok(Extracted {
        warnings: duplicate_warnings(&plan),
    })
}

/// Every entry of the central directory in order, copies of one name included. The count is
/// checked before any entry is read, so a huge directory costs nothing.
fn central_directory(file: &File, limits: &Limits) -> Result<Vec<OwnedZipFileEntry>, ArchiveError> {
    let mut zip = ZipIterable::try_new(io::BufReader::new(file), Config::default())
        .map_err(|e| ArchiveError::NotZip(e.to_string()))?;
    if zip.len() > limits.max_entries {
        return Err(ArchiveError::TooManyEntries {
            count: zip.len(),
            limit: limits.max_entries,
        });
    }
    let mut entries: Vec<OwnedZipFileEntry> = Vec::with_capacity(zip.len());
    let files = zip
        .files()
        .map_err(|e| ArchiveError::NotZip(e.to_string()))?;
    for entry in files {
        match entry {
            Ok(entry) => entries.push(entry.into()),
            Err(e) => {
                return Err(ArchiveError::BadDirectoryEntry {
                    position: entries.len() + 1,
                    after: entries.last().map(entry_name),
                    detail: e.to_string(),
                });
            }
        }
    }
    Ok(entries)
}

/// The entry's name for messages: UTF-8 (or CP437) as the zip reader decodes it, else lossy.
fn entry_name(entry: &OwnedZipFileEntry) -> String {
    match entry.name() {
        Ok(name) => name.into_owned(),
        Err(_) => String::from_utf8_lossy(entry.name_raw()).into_owned(),
    }
}

/// Validates every entry (name, type, sizes, ratio, copies) and returns what to write. Nothing
/// touches the file system here, so a bad entry anywhere in the archive means nothing is
/// written.
fn plan(entries: &[OwnedZipFileEntry], limits: &Limits) -> Result<Vec<Planned>, ArchiveError> {
    let mut plan: Vec<Planned> = Vec::with_capacity(entries.len());
    let mut first_at: HashMap<PathBuf, usize> = HashMap::with_capacity(entries.len());
    // Copies count too: each one is decompressed to be compared.
    let mut total: u64 = 0;
    let mut has_model_description = false;

    for entry in entries {
        let mut item = check_entry(entry, limits)?;
        total = total.saturating_add(item.declared);
        if total > limits.max_total_uncompressed {
            return Err(ArchiveError::TotalTooLarge {
                entry: item.name,
                size: total,
                limit: limits.max_total_uncompressed,
            });
        }
        match first_at.get(&item.path) {
            Some(&first) => {
                check_same_kind_and_header(&plan[first], &item)?;
                item.copy_of = Some(first);
            }
            None => {
                first_at.insert(item.path.clone(), plan.len());
            }
        }
        if !item.is_dir && item.path == Path::new(MODEL_DESCRIPTION) {
            has_model_description = true;
        }
        plan.push(item);
    }

    if !has_model_description {
        return Err(ArchiveError::MissingModelDescription);
    }
    Ok(plan)
}

/// One entry on its own: its name, its type (file or folder only), encryption, compression
/// method and sizes.
fn check_entry(entry: &OwnedZipFileEntry, limits: &Limits) -> Result<Planned, ArchiveError> {
    let name = entry_name(entry);
    if entry.name_raw().contains(&0) || name.contains('\0') {
        return Err(ArchiveError::InvalidName {
            entry: name.replace('\0', "\\0"),
            reason: "it contains a NUL byte",
        });
    }
    let (path, name_is_dir) = validate_name(&name)?;

    let is_dir = match entry.unix_mode().map(|mode| mode & S_IFMT) {
        None | Some(0) => name_is_dir,
        Some(S_IFREG) if !name_is_dir => false,
        // A regular-file mode on a name ending in '/' is a sloppy archiver, not an attack.
        Some(S_IFREG) | Some(S_IFDIR) => true,
        Some(S_IFLNK) => return Err(ArchiveError::Link { entry: name }),
        Some(other) => {
            return Err(ArchiveError::SpecialFile {
                entry: name,
                kind: special_kind(other),
            });
        }
    };

    if entry.encrypted() {
        return Err(ArchiveError::Encrypted { entry: name });
    }
    let compression = entry.compression();
    if !is_dir
        && compression != CompressionMethod::Stored
        && compression != CompressionMethod::Deflated
    {
        return Err(ArchiveError::UnsupportedCompression {
            entry: name,
            method: format!("{compression:?}"),
        });
    }

    let declared = if is_dir { 0 } else { entry.size() };
    if declared > limits.max_entry_uncompressed {
        return Err(ArchiveError::EntryTooLarge {
            entry: name,
            size: declared,
            limit: limits.max_entry_uncompressed,
        });
    }
    let compressed = entry.compressed_size();
    if declared >= RATIO_CHECK_MIN_BYTES
        && declared / compressed.max(1) > limits.max_compression_ratio
    {
        return Err(ArchiveError::CompressionRatio {
            entry: name,
            size: declared,
            compressed,
            limit: limits.max_compression_ratio,
        });
    }
    Ok(Planned {
        name,
        path,
        is_dir,
        declared,
        crc32: entry.crc32(),
        copy_of: None,
    })
}

/// A second entry at a path already planned must be the same kind of entry and, for a file,
/// declare the same size and CRC-32; its bytes are compared when it is read.
fn check_same_kind_and_header(first: &Planned, copy: &Planned) -> Result<(), ArchiveError> {
    if first.is_dir != copy.is_dir {
        return Err(ArchiveError::FileAndFolder {
            entry: copy.name.clone(),
            other: first.name.clone(),
        });
    }
    let difference = if first.is_dir {
        None
    } else if first.declared != copy.declared {
        Some(Difference::Size {
            first: first.declared,
            second: copy.declared,
        })
    } else if first.crc32 != copy.crc32 {
        Some(Difference::Crc)
    } else {
        None
    };
    match difference {
        Some(difference) => Err(ArchiveError::DuplicateDiffers {
            entry: copy.name.clone(),
            difference,
        }),
        None => Ok(()),
    }
}

/// One warning per entry listed more than once, in the order of their first copies.
fn duplicate_warnings(plan: &[Planned]) -> Vec<ArchiveWarning> {
    let mut copies = vec![1usize; plan.len()];
    for item in plan {
        if let Some(first) = item.copy_of {
            copies[first] += 1;
        }
    }
    plan.iter()
        .zip(copies)
        .filter(|(_, copies)| *copies > 1)
        .map(|(item, copies)| ArchiveWarning::DuplicateEntry {
            entry: item.name.clone(),
            copies,
        })
        .collect()
}

/// Turns an entry name into a relative path of normal components, or says why it cannot be one.
/// Returns the path and whether the name marks a directory (trailing `/`).
fn validate_name(name: &str) -> Result<(PathBuf, bool), ArchiveError> {
    let invalid = |reason| ArchiveError::InvalidName {
        entry: name.to_owned(),
        reason,
    };
    let escapes = || ArchiveError::PathEscapes {
        entry: name.to_owned(),
    };

    if name.is_empty() {
        return Err(invalid("the name is empty"));
    }
    if name.starts_with('/') {
        return Err(escapes());
    }
    if name.contains('\\') {
        // Windows archivers sometimes write `\`; on Linux it would be part of a file name, and
        // elsewhere it is a separator that could smuggle `..\`. Refuse rather than guess.
        return Err(invalid("it contains a backslash"));
    }
    let (body, is_dir) = match name.strip_suffix('/') {
        Some(body) => (body, true),
        None => (name, false),
    };
    if body.is_empty() {
        return Err(invalid("the name is empty"));
    }
    let mut path = PathBuf::new();
    for (i, component) in body.split('/').enumerate() {
        match component {
            ".." => return Err(escapes()),
            "" => return Err(invalid("it contains an empty path component (//)")),
            "." => return Err(invalid("it contains a '.' path component")),
            c if i == 0 && is_drive_prefix(c) => return Err(escapes()),
            c => path.push(c),
        }
    }
    Ok((path, is_dir))
}

/// `C:` and the like: absolute on Windows, so treated as an escape everywhere.
fn is_drive_prefix(component: &str) -> bool {
    let bytes = component.as_bytes();
    bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':'
}

fn special_kind(file_type: u32) -> &'static str {
    match file_type {
        0o010_000 => "FIFO",
        0o020_000 => "character device",
        0o060_000 => "block device",
        0o140_000 => "socket",
        _ => "file of unknown type",
    }
}

/// Makes sure `dest` is an empty real directory. Returns whether this call created it, so a
/// failed extraction removes only what it made.
fn prepare_destination(dest: &Path) -> Result<bool, ArchiveError> {
    match fs::symlink_metadata(dest) {
        Ok(meta) if meta.file_type().is_symlink() => {
            Err(ArchiveError::Destination("is a symbolic link"))
        }
        Ok(meta) if !meta.is_dir() => Err(ArchiveError::Destination("is not a directory")),
        Ok(_) => {
            let mut entries = fs::read_dir(dest)
                .map_err(|e| ArchiveError::io("cannot read the destination directory", e))?;
            if entries.next().is_some() {
                Err(ArchiveError::Destination("is not empty"))
            } else {
                Ok(false)
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .mode(0o755)
                .create(dest)
                .map_err(|e| ArchiveError::io("cannot create the destination directory", e))?;
            Ok(true)
        }
        Err(e) => Err(ArchiveError::io(
            "cannot inspect the destination directory",
            e,
        )),
    }
}

/// Removes everything inside `dir`, not `dir` itself. `remove_dir_all` does not follow links.
fn empty_directory(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Writes the planned entries in archive order. A copy of an earlier entry is read and compared
/// with what that entry wrote; nothing is written for it.
fn write_entries<R: io::Read + io::Seek>(
    reader: &mut R,
    entries: &[OwnedZipFileEntry],
    plan: &[Planned],
    dest: &Path,
    limits: &Limits,
) -> Result<(), ArchiveError> {
    let mut dirs = DirBuilder::new();
    dirs.recursive(true).mode(0o755);
    // Bytes decompressed so far, copies included: the total limit bounds the work, not only
    // the disk.
    let mut read_total: u64 = 0;

    for (item, entry) in plan.iter().zip(entries) {
        let target = dest.join(&item.path);
        if item.is_dir {
            if item.copy_of.is_none() {
                dirs.create(&target)
                    .map_err(|e| ArchiveError::io(format!("creating '{}'", item.name), e))?;
            }
            continue;
        }
        let mut src = entry
            .as_ref()
            .with_reader(reader, ZipReadOptions::new())
            .map_err(|e| ArchiveError::Corrupt {
                entry: item.name.clone(),
                detail: e.to_string(),
            })?;
        // The header size was checked against the limits; the cap makes sure the bytes that
        // actually come out cannot exceed it, whatever the header claimed.
        let remaining_total = limits.max_total_uncompressed.saturating_sub(read_total);
        let copy = Capped {
            cap: item
                .declared
                .min(limits.max_entry_uncompressed)
                .min(remaining_total),
            read_before: read_total,
            limit: limits.max_total_uncompressed,
        };
        let read = if item.copy_of.is_some() {
            compare_copy(&mut src, &target, item, &copy)?
        } else {
            write_file(&mut src, &target, item, &copy, &dirs)?
        };
        read_total = read_total.saturating_add(read);
    }
    Ok(())
}

/// How much one entry may produce, and what was read before it (for the message when the
/// total limit is what stops it).
struct Capped {
    cap: u64,
    read_before: u64,
    limit: u64,
}

/// Writes a new file for `item` with the entry's bytes; returns how many.
fn write_file(
    src: &mut impl Read,
    target: &Path,
    item: &Planned,
    copy: &Capped,
    dirs: &DirBuilder,
) -> Result<u64, ArchiveError> {
    if let Some(parent) = target.parent() {
        dirs.create(parent)
            .map_err(|e| ArchiveError::io(format!("creating the folder of '{}'", item.name), e))?;
    }
    // create_new: never replace or write through anything already there (O_EXCL also
    // refuses a symlink in the final component).
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(target)
        .map_err(|e| ArchiveError::io(format!("creating '{}'", item.name), e))?;
    let writing = || format!("writing '{}'", item.name);
    let written = copy_entry(src, &mut out, item, copy, writing)?;
    out.flush().map_err(|e| ArchiveError::io(writing(), e))?;
    Ok(written)
}

/// Reads a copy of an entry already written to `target` and checks that its bytes are that
/// file's, byte for byte, to the end; returns how many bytes it read.
fn compare_copy(
    src: &mut impl Read,
    target: &Path,
    item: &Planned,
    copy: &Capped,
) -> Result<u64, ArchiveError> {
    let reading = || format!("reading the first copy of '{}'", item.name);
    let first = File::open(target).map_err(|e| ArchiveError::io(reading(), e))?;
    let mut same = SameBytes::new(io::BufReader::new(first));
    let compared = copy_entry(src, &mut same, item, copy, reading);
    let differs = |offset| ArchiveError::DuplicateDiffers {
        entry: item.name.clone(),
        difference: Difference::Bytes { offset },
    };
    if let Some(offset) = same.differs_at {
        return Err(differs(offset));
    }
    let read = compared?;
    if !same.at_end().map_err(|e| ArchiveError::io(reading(), e))? {
        return Err(differs(read));
    }
    Ok(read)
}

/// Copies one entry under its cap and turns what can go wrong into the entry's error.
fn copy_entry(
    src: &mut impl Read,
    dst: &mut impl Write,
    item: &Planned,
    copy: &Capped,
    writing: impl Fn() -> String,
) -> Result<u64, ArchiveError> {
    match copy_capped(src, dst, copy.cap) {
        Ok(n) => Ok(n),
        // The zip reader counts too and stops a lying entry before our cap does.
        Err(CopyError::Read(e)) if is_oversize_error(&e) => Err(ArchiveError::SizeMismatch {
            entry: item.name.clone(),
            declared: item.declared,
        }),
        Err(CopyError::Read(e)) => Err(ArchiveError::Corrupt {
            entry: item.name.clone(),
            detail: e.to_string(),
        }),
        Err(CopyError::Write(e)) => Err(ArchiveError::io(writing(), e)),
        Err(CopyError::Exceeded) if copy.cap < item.declared => Err(ArchiveError::TotalTooLarge {
            entry: item.name.clone(),
            size: copy.read_before.saturating_add(copy.cap).saturating_add(1),
            limit: copy.limit,
        }),
        Err(CopyError::Exceeded) => Err(ArchiveError::SizeMismatch {
            entry: item.name.clone(),
            declared: item.declared,
        }),
    }
}

/// A sink that compares what it is given with the bytes of an existing file instead of
/// writing them. At the first difference it records the offset and fails the write.
struct SameBytes<R> {
    first: R,
    offset: u64,
    differs_at: Option<u64>,
    buf: Vec<u8>,
}

impl<R: Read> SameBytes<R> {
    fn new(first: R) -> Self {
        SameBytes {
            first,
            offset: 0,
            differs_at: None,
            buf: Vec::new(),
        }
    }

    /// Whether the file has no bytes left after those compared.
    fn at_end(&mut self) -> io::Result<bool> {
        let mut one = [0u8; 1];
        Ok(read_full(&mut self.first, &mut one)? == 0)
    }
}

impl<R: Read> Write for SameBytes<R> {
    fn write(&mut self, given: &[u8]) -> io::Result<usize> {
        self.buf.resize(given.len(), 0);
        let n = read_full(&mut self.first, &mut self.buf)?;
        // Slice equality first (a memcmp); the offset is only looked for once they differ.
        if self.buf[..n] != *given {
            let at = given
                .iter()
                .zip(&self.buf[..n])
                .position(|(a, b)| a != b)
                .unwrap_or(n);
            self.differs_at = Some(self.offset + at as u64);
            return Err(io::Error::other("the copies differ"));
        }
        self.offset += given.len() as u64;
        Ok(given.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads until `buf` is full or the source ends; returns how many bytes were read.
fn read_full(src: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match src.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Whether a read error is the zip reader's own "more bytes than declared" check. Matching the
/// text only picks the clearer message; if it ever changes, the entry is still refused, as
/// corrupt.
fn is_oversize_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
        && e.to_string()
            .contains("larger than its declared uncompressed size")
}

#[derive(Debug)]
enum CopyError {
    Read(io::Error),
    Write(io::Error),
    /// The source produced more than `cap` bytes.
    Exceeded,
}

/// Copies at most `cap` bytes and fails with [`CopyError::Exceeded`] as soon as the source
/// proves to have more, without reading (or decompressing) further than one buffer past it.
fn copy_capped(src: &mut impl Read, dst: &mut impl Write, cap: u64) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut written: u64 = 0;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(written),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        let new_total = written.saturating_add(n as u64);
        if new_total > cap {
            return Err(CopyError::Exceeded);
        }
        dst.write_all(&buf[..n]).map_err(CopyError::Write)?;
        written = new_total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::os::unix::fs::PermissionsExt;
    use zip::ZipWriter;
    use zip::write::SimpleFileOptions;

    const MD: &[u8] = b"<fmiModelDescription/>";

    fn deflated() -> SimpleFileOptions {
        SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
    }

    /// Builds a zip in memory from (name, contents) pairs; names ending in '/' are directories.
    fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            if name.ends_with('/') {
                w.add_directory(*name, deflated()).unwrap();
            } else {
                w.start_file(*name, deflated()).unwrap();
                w.write_all(data).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    struct Case {
        _tmp: tempfile::TempDir,
        archive: PathBuf,
        dest: PathBuf,
    }

    fn case(bytes: &[u8]) -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let archive = tmp.path().join("model.fmu");
        fs::write(&archive, bytes).unwrap();
        let dest = tmp.path().join("out");
        fs::create_dir(&dest).unwrap();
        Case {
            _tmp: tmp,
            archive,
            dest,
        }
    }

    fn run(bytes: &[u8], limits: &Limits) -> (Case, Result<Extracted, ArchiveError>) {
        let c = case(bytes);
        let result = extract(&c.archive, &c.dest, limits);
        (c, result)
    }

    fn assert_empty(dir: &Path) {
        if dir.exists() {
            let left: Vec<_> = fs::read_dir(dir).unwrap().collect();
            assert!(left.is_empty(), "destination not cleaned up: {left:?}");
        }
    }

    #[test]
    fn extracts_a_normal_fmu() {
        let bytes = zip_bytes(&[
            (MODEL_DESCRIPTION, MD),
            ("binaries/", b""),
            ("binaries/x86_64-linux/", b""),
            ("binaries/x86_64-linux/Model.so", b"\x7fELF..."),
            ("resources/data/table.csv", b"t,x\n0,1\n"),
        ]);
        let (c, result) = run(&bytes, &Limits::default());
        result.unwrap();
        assert_eq!(fs::read(c.dest.join(MODEL_DESCRIPTION)).unwrap(), MD);
        let so = c.dest.join("binaries/x86_64-linux/Model.so");
        assert_eq!(fs::read(&so).unwrap(), b"\x7fELF...");
        let mode = fs::metadata(&so).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o644, 0, "mode {mode:o} must not exceed 0644");
        assert_eq!(
            fs::read(c.dest.join("resources/data/table.csv")).unwrap(),
            b"t,x\n0,1\n"
        );
    }

    #[test]
    fn creates_a_missing_destination_and_removes_it_on_error() {
        let c = case(&zip_bytes(&[(MODEL_DESCRIPTION, MD)]));
        let dest = c.dest.join("new");
        extract(&c.archive, &dest, &Limits::default()).unwrap();
        assert!(dest.join(MODEL_DESCRIPTION).is_file());

        let dest2 = c.dest.join("new2");
        let limits = Limits {
            max_total_uncompressed: 1,
            ..Limits::default()
        };
        assert!(extract(&c.archive, &dest2, &limits).is_err());
        assert!(!dest2.exists());
    }

    #[test]
    fn refuses_a_non_empty_destination() {
        let c = case(&zip_bytes(&[(MODEL_DESCRIPTION, MD)]));
        fs::write(c.dest.join("old"), b"x").unwrap();
        let err = extract(&c.archive, &c.dest, &Limits::default()).unwrap_err();
        assert!(matches!(err, ArchiveError::Destination(_)), "{err}");
        assert_eq!(fs::read(c.dest.join("old")).unwrap(), b"x");
    }

    #[test]
    fn refuses_parent_components() {
        let bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD), ("../x", b"evil")]);
        let (c, result) = run(&bytes, &Limits::default());
        let err = result.unwrap_err();
        assert!(matches!(err, ArchiveError::PathEscapes { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "entry '../x' escapes the archive (.. or absolute path)"
        );
        assert_empty(&c.dest);
        assert!(!c.dest.parent().unwrap().join("x").exists());
    }

    #[test]
    fn refuses_absolute_paths() {
        let bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD), ("/abs", b"evil")]);
        let (c, result) = run(&bytes, &Limits::default());
        let err = result.unwrap_err();
        assert!(matches!(err, ArchiveError::PathEscapes { .. }), "{err}");
        assert!(err.to_string().contains("'/abs'"), "{err}");
        assert_empty(&c.dest);
    }

    #[test]
    fn refuses_bad_names_before_writing_anything() {
        for (bad, escapes) in [
            ("a/../../x", true),
            ("C:/windows/x.dll", true),
            ("binaries\\..\\x", false),
            ("a//b", false),
            ("./a", false),
        ] {
            // The good entry comes first: it must not be written either.
            let bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD), (bad, b"x")]);
            let (c, result) = run(&bytes, &Limits::default());
            let err = result.unwrap_err();
            if escapes {
                assert!(
                    matches!(err, ArchiveError::PathEscapes { .. }),
                    "{bad}: {err}"
                );
            } else {
                assert!(
                    matches!(err, ArchiveError::InvalidName { .. }),
                    "{bad}: {err}"
                );
            }
            assert!(err.to_string().contains(bad), "{err}");
            assert_empty(&c.dest);
        }
        assert!(validate_name("").is_err());
        assert!(validate_name("/").is_err());
        assert_eq!(
            validate_name("binaries/linux64/").unwrap(),
            (PathBuf::from("binaries/linux64"), true)
        );
    }

    #[test]
    fn refuses_symlinks() {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file(MODEL_DESCRIPTION, deflated()).unwrap();
        w.write_all(MD).unwrap();
        w.add_symlink("binaries/x86_64-linux/link.so", "/etc/passwd", deflated())
            .unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let (c, result) = run(&bytes, &Limits::default());
        let err = result.unwrap_err();
        assert!(matches!(err, ArchiveError::Link { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "entry 'binaries/x86_64-linux/link.so' is a symbolic link; links are not allowed"
        );
        assert_empty(&c.dest);
    }

    #[test]
    fn refuses_special_files() {
        for (mode, kind) in [
            (0o010_644, "FIFO"),
            (0o020_644, "character device"),
            (0o060_644, "block device"),
            (0o140_644, "socket"),
        ] {
            let mut bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD), ("node", b"")]);
            patch_unix_mode(&mut bytes, "node", mode);
            let (c, result) = run(&bytes, &Limits::default());
            let err = result.unwrap_err();
            assert!(
                matches!(&err, ArchiveError::SpecialFile { entry, kind: k } if entry == "node" && *k == kind),
                "{err}"
            );
            assert_empty(&c.dest);
        }
        // A link forged through the mode bits (not via add_symlink) is still a link.
        let mut bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD), ("l", b"/etc/passwd")]);
        patch_unix_mode(&mut bytes, "l", 0o120_777);
        let (_c, result) = run(&bytes, &Limits::default());
        assert!(matches!(result, Err(ArchiveError::Link { .. })));
    }

    #[test]
    fn refuses_too_many_entries() {
        let names: Vec<String> = (0..2_000).map(|i| format!("resources/{i}.txt")).collect();
        let mut entries: Vec<(&str, &[u8])> = vec![(MODEL_DESCRIPTION, MD)];
        entries.extend(names.iter().map(|n| (n.as_str(), &b"x"[..])));
        let bytes = zip_bytes(&entries);
        let limits = Limits {
            max_entries: 2_000,
            ..Limits::default()
        };
        let (c, result) = run(&bytes, &limits);
        let err = result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the archive has 2001 entries; the limit is 2000"
        );
        assert_empty(&c.dest);

        let limits = Limits {
            max_entries: 10,
            ..Limits::default()
        };
        let (_c, result) = run(&bytes, &limits);
        assert!(matches!(
            result,
            Err(ArchiveError::TooManyEntries {
                count: 2001,
                limit: 10
            })
        ));
    }

    #[test]
    fn refuses_a_zip_bomb_by_ratio() {
        let zeros = vec![0u8; 50_000_000];
        let bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD), ("a.bin", &zeros)]);
        assert!(bytes.len() < 200_000, "deflate should squeeze zeros");
        let (c, result) = run(&bytes, &Limits::default());
        let err = result.unwrap_err();
        assert!(
            matches!(err, ArchiveError::CompressionRatio { .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with("entry 'a.bin' expands to more than 200 times"),
            "{msg}"
        );
        assert!(msg.ends_with("this looks like a zip bomb"), "{msg}");
        assert_empty(&c.dest);
    }

    #[test]
    fn refuses_entries_and_totals_over_the_size_limits() {
        let data = vec![7u8; 10_000];
        let bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD), ("a.bin", &data), ("b.bin", &data)]);

        let limits = Limits {
            max_entry_uncompressed: 9_999,
            ..Limits::default()
        };
        let (c, result) = run(&bytes, &limits);
        let err = result.unwrap_err();
        assert!(
            matches!(&err, ArchiveError::EntryTooLarge { entry, size: 10_000, .. } if entry == "a.bin"),
            "{err}"
        );
        assert_empty(&c.dest);

        let limits = Limits {
            max_total_uncompressed: 15_000,
            ..Limits::default()
        };
        let (c, result) = run(&bytes, &limits);
        let err = result.unwrap_err();
        assert!(matches!(err, ArchiveError::TotalTooLarge { .. }), "{err}");
        assert_empty(&c.dest);
    }

    #[test]
    fn refuses_an_archive_over_the_file_size_limit() {
        let bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD)]);
        let limits = Limits {
            max_archive_bytes: 10,
            ..Limits::default()
        };
        let (c, result) = run(&bytes, &limits);
        let err = result.unwrap_err();
        assert!(
            matches!(err, ArchiveError::TooLarge { limit: 10, .. }),
            "{err}"
        );
        assert_empty(&c.dest);
        assert_eq!(
            ArchiveError::TooLarge {
                size: 150 * MIB,
                limit: 100 * MIB
            }
            .to_string(),
            "the archive is 150 MiB; the limit is 100 MiB"
        );
    }

    /// Calls `patch(is_central, header_offset)` for the local and the central header of the
    /// entry named `name`, so tests can forge what the zip writer will not produce.
    fn patch_headers(bytes: &mut [u8], name: &str, mut patch: impl FnMut(&mut [u8], bool, usize)) {
        let mut patched = 0;
        let mut i = 0;
        while i + 46 <= bytes.len() {
            let sig = u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
            let (central, name_len_at, name_at) = match sig {
                0x0403_4b50 => (false, i + 26, i + 30),
                0x0201_4b50 => (true, i + 28, i + 46),
                _ => {
                    i += 1;
                    continue;
                }
            };
            let len = u16::from_le_bytes(bytes[name_len_at..name_len_at + 2].try_into().unwrap());
            if bytes.get(name_at..name_at + len as usize) == Some(name.as_bytes()) {
                patch(bytes, central, i);
                patched += 1;
            }
            i += 4;
        }
        assert_eq!(
            patched, 2,
            "expected a local and a central header for {name}"
        );
    }

    /// A header that lies: the uncompressed size is rewritten, the data (and CRC) left alone.
    fn patch_declared_size(bytes: &mut [u8], name: &str, size: u32) {
        patch_headers(bytes, name, |b, central, at| {
            let at = if central { at + 24 } else { at + 22 };
            b[at..at + 4].copy_from_slice(&size.to_le_bytes());
        });
    }

    /// Marks the entry as made on Unix with the given mode (file type bits included).
    fn patch_unix_mode(bytes: &mut [u8], name: &str, mode: u32) {
        patch_headers(bytes, name, |b, central, at| {
            if central {
                b[at + 5] = 3; // version made by: Unix
                b[at + 38..at + 42].copy_from_slice(&(mode << 16).to_le_bytes());
            }
        });
    }

    #[test]
    fn refuses_an_entry_that_lies_about_its_size() {
        let data = vec![b'a'; 100_000];
        let mut bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD), ("liar.bin", &data)]);
        patch_declared_size(&mut bytes, "liar.bin", 10);
        let (c, result) = run(&bytes, &Limits::default());
        let err = result.unwrap_err();
        // The zip reader's own count notices first; either way it reads as a lie.
        assert!(
            matches!(
                &err,
                ArchiveError::SizeMismatch { entry, declared: 10 } if entry == "liar.bin"
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "entry 'liar.bin' expands to more than the 10 bytes its header declares: this looks like a zip bomb"
        );
        assert!(err.to_string().contains("liar.bin"), "{err}");
        assert_empty(&c.dest);
    }

    #[test]
    fn the_copy_cap_stops_at_the_limit() {
        let mut out = Vec::new();
        let result = copy_capped(&mut io::repeat(0), &mut out, 100_000);
        assert!(matches!(result, Err(CopyError::Exceeded)));
        assert!(out.len() <= 100_000);

        let mut out = Vec::new();
        let n = copy_capped(&mut Cursor::new(vec![1u8; 1000]), &mut out, 1000).unwrap();
        assert_eq!((n, out.len()), (1000, 1000));

        let mut out = Vec::new();
        let result = copy_capped(&mut Cursor::new(vec![1u8; 1001]), &mut out, 1000);
        assert!(matches!(result, Err(CopyError::Exceeded)));
    }

    #[test]
    fn refuses_what_is_not_a_zip() {
        let (c, result) = run(b"this is not a zip file at all", &Limits::default());
        let err = result.unwrap_err();
        assert!(matches!(err, ArchiveError::NotZip(_)), "{err}");
        assert!(err.to_string().starts_with("not a zip archive: "), "{err}");
        assert_empty(&c.dest);

        // A truncated zip is not a zip either.
        let mut bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD)]);
        bytes.truncate(bytes.len() / 2);
        let (_c, result) = run(&bytes, &Limits::default());
        assert!(matches!(result, Err(ArchiveError::NotZip(_))));
    }

    #[test]
    fn requires_a_top_level_model_description() {
        for entries in [
            &[("binaries/linux64/m.so", &b"x"[..])][..],
            &[("Model/modelDescription.xml", MD)][..],
            &[("modelDescription.xml/", &b""[..])][..],
        ] {
            let (c, result) = run(&zip_bytes(entries), &Limits::default());
            let err = result.unwrap_err();
            assert!(
                matches!(err, ArchiveError::MissingModelDescription),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                "modelDescription.xml is missing at the top of the archive"
            );
            assert_empty(&c.dest);
        }
    }

    /// Renames entry `from` to `to` (same length) in its local and central headers: the zip
    /// writer refuses to write one name twice, so tests write a stand-in name and rename it.
    fn rename_entry(bytes: &mut [u8], from: &str, to: &str) {
        assert_eq!(from.len(), to.len(), "a rename keeps the length");
        patch_headers(bytes, from, |b, central, at| {
            let name_at = if central { at + 46 } else { at + 30 };
            b[name_at..name_at + to.len()].copy_from_slice(to.as_bytes());
        });
    }

    fn warnings(result: Result<Extracted, ArchiveError>) -> Vec<String> {
        result
            .unwrap()
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn an_entry_listed_twice_with_identical_bytes_is_extracted_once_with_a_warning() {
        let data = b"same bytes in every copy".repeat(100);
        let mut bytes = zip_bytes(&[
            (MODEL_DESCRIPTION, MD),
            ("extra/", b""),
            ("extra/a.txt", &data),
            ("extra/b.txt", &data),
            ("extra/c.txt", &data),
            ("extrb/", b""),
            ("other.txt", b"x"),
        ]);
        rename_entry(&mut bytes, "extra/b.txt", "extra/a.txt");
        rename_entry(&mut bytes, "extra/c.txt", "extra/a.txt");
        rename_entry(&mut bytes, "extrb/", "extra/");
        let (c, result) = run(&bytes, &Limits::default());
        assert_eq!(
            warnings(result),
            [
                "entry 'extra/' appears 2 times in the archive with identical contents; it was extracted once",
                "entry 'extra/a.txt' appears 3 times in the archive with identical contents; it was extracted once",
            ]
        );
        assert_eq!(fs::read(c.dest.join("extra/a.txt")).unwrap(), data);
        let mut names: Vec<_> = fs::read_dir(c.dest.join("extra"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["a.txt"]);
        assert_eq!(fs::read(c.dest.join("other.txt")).unwrap(), b"x");

        // A clean archive has no warnings.
        let (_c, result) = run(&zip_bytes(&[(MODEL_DESCRIPTION, MD)]), &Limits::default());
        assert_eq!(result.unwrap(), Extracted::default());
    }

    #[test]
    fn identical_copies_may_be_compressed_differently() {
        // The bytes that come out are compared, not the bytes stored.
        let data = b"0123456789".repeat(1000);
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file(MODEL_DESCRIPTION, deflated()).unwrap();
        w.write_all(MD).unwrap();
        w.start_file("a.bin", deflated()).unwrap();
        w.write_all(&data).unwrap();
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        w.start_file("b.bin", stored).unwrap();
        w.write_all(&data).unwrap();
        let mut bytes = w.finish().unwrap().into_inner();
        rename_entry(&mut bytes, "b.bin", "a.bin");
        let (c, result) = run(&bytes, &Limits::default());
        assert_eq!(warnings(result).len(), 1);
        assert_eq!(fs::read(c.dest.join("a.bin")).unwrap(), data);
    }

    #[test]
    fn copies_with_different_contents_are_refused_naming_the_entry() {
        // Different sizes: refused from the headers, before anything is written.
        let mut bytes = zip_bytes(&[
            (MODEL_DESCRIPTION, MD),
            ("x/a.txt", b"1"),
            ("x/b.txt", b"22"),
        ]);
        rename_entry(&mut bytes, "x/b.txt", "x/a.txt");
        let (c, result) = run(&bytes, &Limits::default());
        let err = result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 'x/a.txt' appears twice with different contents (1 bytes and 2 bytes)"
        );
        assert_empty(&c.dest);

        // Same size, different CRC-32.
        let mut bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD), ("a.txt", b"1"), ("b.txt", b"2")]);
        rename_entry(&mut bytes, "b.txt", "a.txt");
        let (c, result) = run(&bytes, &Limits::default());
        let err = result.unwrap_err();
        assert!(
            matches!(&err, ArchiveError::DuplicateDiffers { entry, difference: Difference::Crc } if entry == "a.txt"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "entry 'a.txt' appears twice with different contents (same size, different CRC-32)"
        );
        assert_empty(&c.dest);

        // Same size and a forged CRC-32 that matches: the bytes are compared, and the first
        // difference is found before the zip reader's own CRC check would run.
        let first = b"aaaa-first-copy".repeat(50);
        let mut second = first.clone();
        second[700] = b'!';
        let mut bytes = zip_bytes(&[
            (MODEL_DESCRIPTION, MD),
            ("a.bin", &first),
            ("b.bin", &second),
        ]);
        let crc = crc32_of(&bytes, "a.bin");
        patch_crc(&mut bytes, "b.bin", crc);
        rename_entry(&mut bytes, "b.bin", "a.bin");
        let (c, result) = run(&bytes, &Limits::default());
        let err = result.unwrap_err();
        assert!(
            matches!(&err, ArchiveError::DuplicateDiffers { entry, difference: Difference::Bytes { offset: 700 } } if entry == "a.bin"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "entry 'a.bin' appears twice with different contents (same size and CRC-32, different bytes from byte 700)"
        );
        assert_empty(&c.dest);
    }

    #[test]
    fn a_name_that_is_a_file_and_a_folder_is_refused() {
        // The same name twice, the second copy marked as a directory by its mode.
        let mut bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD), ("a", b""), ("b", b"")]);
        patch_unix_mode(&mut bytes, "b", 0o040_755);
        rename_entry(&mut bytes, "b", "a");
        let (c, result) = run(&bytes, &Limits::default());
        let err = result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 'a' appears twice, once as a file and once as a folder"
        );
        assert_empty(&c.dest);

        // Different names that land on one path: a file "a" and a directory "a/".
        let bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD), ("a", b"1"), ("a/", b"")]);
        let (c, result) = run(&bytes, &Limits::default());
        let err = result.unwrap_err();
        assert!(
            matches!(&err, ArchiveError::FileAndFolder { entry, other } if entry == "a/" && other == "a"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "entries 'a' and 'a/' extract to the same path, one as a file and one as a folder"
        );
        assert_empty(&c.dest);
    }

    #[test]
    fn a_copy_that_is_a_link_is_refused_as_a_link() {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file(MODEL_DESCRIPTION, deflated()).unwrap();
        w.write_all(MD).unwrap();
        w.start_file("extra/a.txt", deflated()).unwrap();
        w.write_all(b"/etc/passwd").unwrap();
        w.add_symlink("extra/b.txt", "/etc/passwd", deflated())
            .unwrap();
        let mut bytes = w.finish().unwrap().into_inner();
        rename_entry(&mut bytes, "extra/b.txt", "extra/a.txt");
        let (c, result) = run(&bytes, &Limits::default());
        let err = result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 'extra/a.txt' is a symbolic link; links are not allowed"
        );
        assert_empty(&c.dest);
    }

    #[test]
    fn names_that_differ_only_in_case_are_two_files() {
        // Linux file names are case-sensitive, and the worker reads the FMU on Linux: two
        // entries, two files, nothing to warn about.
        let bytes = zip_bytes(&[
            (MODEL_DESCRIPTION, MD),
            ("extra/README.txt", b"upper"),
            ("extra/readme.txt", b"lower"),
        ]);
        let (c, result) = run(&bytes, &Limits::default());
        assert_eq!(result.unwrap(), Extracted::default());
        assert_eq!(fs::read(c.dest.join("extra/README.txt")).unwrap(), b"upper");
        assert_eq!(fs::read(c.dest.join("extra/readme.txt")).unwrap(), b"lower");
    }

    #[test]
    fn copies_count_against_the_limits() {
        // Every copy is decompressed to be compared, so each one counts toward the total.
        let data = vec![7u8; 10_000];
        let mut bytes = zip_bytes(&[
            (MODEL_DESCRIPTION, MD),
            ("a.bin", &data),
            ("b.bin", &data),
            ("c.bin", &data),
        ]);
        rename_entry(&mut bytes, "b.bin", "a.bin");
        rename_entry(&mut bytes, "c.bin", "a.bin");
        let limits = Limits {
            max_total_uncompressed: 25_000,
            ..Limits::default()
        };
        let (c, result) = run(&bytes, &limits);
        let err = result.unwrap_err();
        assert!(
            matches!(&err, ArchiveError::TotalTooLarge { entry, size: 30_022, limit: 25_000 } if entry == "a.bin"),
            "{err:?}"
        );
        assert_empty(&c.dest);
        // So does the entry count.
        let limits = Limits {
            max_entries: 3,
            ..Limits::default()
        };
        let (_c, result) = run(&bytes, &limits);
        assert!(matches!(
            result,
            Err(ArchiveError::TooManyEntries { count: 4, limit: 3 })
        ));

        // A copy whose headers agree with the first copy's (size and CRC) but whose data
        // inflates further is stopped at the size it declares.
        let honest = vec![b'q'; 10];
        let liar = vec![b'q'; 100_000];
        let mut bytes = zip_bytes(&[
            (MODEL_DESCRIPTION, MD),
            ("a.bin", &honest),
            ("b.bin", &liar),
        ]);
        patch_declared_size(&mut bytes, "b.bin", 10);
        let crc = crc32_of(&bytes, "a.bin");
        patch_crc(&mut bytes, "b.bin", crc);
        rename_entry(&mut bytes, "b.bin", "a.bin");
        let (c, result) = run(&bytes, &Limits::default());
        assert!(
            matches!(&result, Err(ArchiveError::SizeMismatch { entry, declared: 10 }) if entry == "a.bin"),
            "{result:?}"
        );
        assert_empty(&c.dest);

        // And a bomb stays a bomb when it is listed twice.
        let zeros = vec![0u8; 50_000_000];
        let mut bytes = zip_bytes(&[
            (MODEL_DESCRIPTION, MD),
            ("a.bin", &zeros),
            ("b.bin", &zeros),
        ]);
        rename_entry(&mut bytes, "b.bin", "a.bin");
        let (c, result) = run(&bytes, &Limits::default());
        assert!(
            matches!(result, Err(ArchiveError::CompressionRatio { .. })),
            "{result:?}"
        );
        assert_empty(&c.dest);
    }

    /// The CRC-32 the central directory gives the entry `name`.
    fn crc32_of(bytes: &[u8], name: &str) -> u32 {
        let mut crc = None;
        let mut copy = bytes.to_vec();
        patch_headers(&mut copy, name, |b, central, at| {
            if central {
                crc = Some(u32::from_le_bytes(b[at + 16..at + 20].try_into().unwrap()));
            }
        });
        crc.unwrap()
    }

    /// Rewrites the CRC-32 of entry `name` in both headers, leaving its data alone.
    fn patch_crc(bytes: &mut [u8], name: &str, crc: u32) {
        patch_headers(bytes, name, |b, central, at| {
            let at = if central { at + 16 } else { at + 14 };
            b[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        });
    }

    #[test]
    fn an_unreadable_directory_entry_is_named_by_its_position() {
        let mut bytes = zip_bytes(&[(MODEL_DESCRIPTION, MD), ("a.txt", b"1"), ("b.txt", b"2")]);
        // Break the signature of the third central header.
        let mut seen = 0;
        let mut i = 0;
        while i + 4 <= bytes.len() {
            if bytes[i..i + 4] == 0x0201_4b50u32.to_le_bytes() {
                seen += 1;
                if seen == 3 {
                    bytes[i] = b'X';
                    break;
                }
            }
            i += 1;
        }
        let (c, result) = run(&bytes, &Limits::default());
        let err = result.unwrap_err();
        assert!(
            matches!(&err, ArchiveError::BadDirectoryEntry { position: 3, after: Some(a), .. } if a == "a.txt"),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(
                "entry 3 of the archive's directory cannot be read (the one after 'a.txt'): "
            ),
            "{err}"
        );
        assert_empty(&c.dest);
    }

    #[test]
    fn cleans_up_after_a_failure_halfway() {
        // Two files written, then the third is a liar: the first two must be removed.
        let data = vec![b'z'; 50_000];
        let mut bytes = zip_bytes(&[
            (MODEL_DESCRIPTION, MD),
            ("resources/ok.txt", b"fine"),
            ("resources/zz.bin", &data),
        ]);
        patch_declared_size(&mut bytes, "resources/zz.bin", 5);
        let c = case(&bytes);
        assert!(extract(&c.archive, &c.dest, &Limits::default()).is_err());
        assert_empty(&c.dest);
        assert!(c.dest.is_dir(), "a destination the caller made stays");
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(Bytes(12).to_string(), "12 bytes");
        assert_eq!(Bytes(2048).to_string(), "2 KiB");
        assert_eq!(Bytes(1536).to_string(), "1.5 KiB");
        assert_eq!(Bytes(100 * MIB).to_string(), "100 MiB");
    }
}
