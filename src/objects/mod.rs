//! The service's one way to keep files that must outlive a process and be seen by every
//! server and worker machine: uploaded and library FMU archives, saved FMU states, run
//! results, sweep trajectories and the JSON of reference checks.
//!
//! One code path over two backends (`object_store`): the local filesystem rooted in the data
//! directory (the default, which keeps the layout earlier versions wrote: `fmus/<id>.fmu`,
//! `runs/<id>.result`, …) or any S3-compatible service (`FMU_GATEWAY_OBJECT_STORE=
//! s3://bucket/prefix`). A file is written locally first (scratch, as the worker writes it),
//! then put in one piece; a put is atomic per object, so no reader ever sees part of one.
//! Workers read extracted FMUs from a local cache ([`cache`]) filled from here.

pub mod cache;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{
    ClientOptions, GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};

use crate::config::Secret;
use crate::domain::ids::{FmuId, RunId, SweepId};

/// Where the objects live (`FMU_GATEWAY_OBJECT_STORE`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// Files under the data directory (the default).
    #[default]
    Local,
    /// An S3-compatible service.
    S3(S3Setting),
}

/// An S3 bucket, a key prefix in it, and the AWS settings read from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Setting {
    pub bucket: String,
    /// Prepended to every key (`""`: the bucket's root).
    pub prefix: String,
    /// The `AWS_*` variables that were set, by name (`AWS_REGION`, …): secrets, never logged.
    pub aws: Vec<(String, Secret)>,
}

/// The AWS variables the S3 backend reads, as the AWS tools name them.
pub const AWS_VARIABLES: [&str; 7] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
];

impl Backend {
    /// Parses `s3://bucket[/prefix]`; `aws` gives the value of each of [`AWS_VARIABLES`].
    pub fn parse(url: &str, aws: impl Fn(&str) -> Option<String>) -> Result<Backend, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or("must be s3://bucket/prefix (unset for the data directory)")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err("names no bucket (s3://bucket/prefix)".into());
        }
        let aws = AWS_VARIABLES
            .iter()
            .filter_map(|name| aws(name).map(|v| (name.to_string(), Secret::from(v))))
            .collect();
        Ok(Backend::S3(S3Setting {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            aws,
        }))
    }
}

/// What is kept, by what it belongs to: the one place that names objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// An FMU's archive, named by its SHA-256 (its id).
    FmuArchive(FmuId),
    /// The verdicts of the references an FMU carries, run at its upload.
    ReferenceChecks(FmuId),
    /// A saved FMU state's bytes, named by their SHA-256.
    State(String),
    /// A succeeded run's results.
    Result(RunId),
    /// The reference a run was compared with (CSV), drawn on its page.
    RunReference(RunId),
    /// One case's trajectory of a sweep that keeps them.
    Trajectory(SweepId, u32),
}

impl Key {
    /// The object's name: the data directory's layout of earlier versions, so the local
    /// backend reads what they stored.
    pub fn path(&self) -> String {
        match self {
            Key::FmuArchive(id) => format!("fmus/{id}.fmu"),
            Key::ReferenceChecks(id) => format!("fmus/{id}.reference-checks.json"),
            Key::State(sha256) => format!("states/{sha256}"),
            Key::Result(id) => format!("runs/{id}.result"),
            Key::RunReference(id) => format!("runs/{id}.reference.csv"),
            Key::Trajectory(sweep, index) => format!("{}{index}.result", trajectories(sweep)),
        }
    }

    fn object_path(&self) -> ObjectPath {
        ObjectPath::from(self.path())
    }
}

/// The prefix of a sweep's trajectories.
fn trajectories(sweep: &SweepId) -> String {
    format!("sweeps/{sweep}/")
}

/// Files up to this size are put in one request; larger ones in parts of this size (S3's
/// parts must be at least 5 MiB).
const PART_BYTES: usize = 8 << 20;

/// The object store and where downloads go.
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// The data directory, with the local backend.
    local_root: Option<PathBuf>,
    /// Where objects fetched from a remote store are downloaded (unlinked once open).
    scratch: PathBuf,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Objects({})", self.store)
    }
}

fn fault(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e),
        e => io::Error::other(e),
    }
}

impl Objects {
    /// Opens the backend: the data directory (which must exist) or the S3 bucket.
    pub fn open(backend: &Backend, data_dir: &Path) -> io::Result<Objects> {
        // Not under `scratch/`, which belongs to the workers (and is checked to be empty).
        let scratch = data_dir.join("cache").join("downloads");
        std::fs::create_dir_all(&scratch)?;
        let (store, local_root): (Arc<dyn ObjectStore>, _) = match backend {
            Backend::Local => (
                Arc::new(LocalFileSystem::new_with_prefix(data_dir).map_err(fault)?),
                Some(data_dir.to_path_buf()),
            ),
            Backend::S3(s3) => (s3_store(s3)?, None),
        };
        Ok(Objects {
            store,
            local_root,
            scratch,
        })
    }

    /// Whether objects live on another machine (S3) rather than in the data directory.
    pub fn is_remote(&self) -> bool {
        self.local_root.is_none()
    }

    /// Puts the file at `file` as `key`, in one request or in parts; the object appears
    /// whole once this returns `Ok`, and not at all otherwise.
    pub async fn put_file(&self, key: &Key, file: &Path) -> io::Result<()> {
        use tokio::io::AsyncReadExt;
        let mut source = tokio::fs::File::open(file).await?;
        let size = source.metadata().await?.len();
        if size <= PART_BYTES as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            source.read_to_end(&mut bytes).await?;
            return self.put_bytes(key, Bytes::from(bytes)).await;
        }
        let upload = self
            .store
            .put_multipart(&key.object_path())
            .await
            .map_err(fault)?;
        let mut parts = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buf = vec![0u8; 1 << 20];
        let copied = async {
            loop {
                let n = source.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                parts.wait_for_capacity(2).await.map_err(fault)?;
                parts.write(&buf[..n]);
            }
        }
        .await;
        match copied {
            Ok(()) => parts.finish().await.map(|_| ()).map_err(fault),
            Err(e) => {
                let _ = parts.abort().await;
                Err(e)
            }
        }
    }

    /// Puts `bytes` as `key` in one request.
    pub async fn put_bytes(&self, key: &Key, bytes: Bytes) -> io::Result<()> {
        self.store
            .put(&key.object_path(), PutPayload::from_bytes(bytes))
            .await
            .map(|_| ())
            .map_err(fault)
    }

    /// The whole object in memory (states, reference checks: small).
    pub async fn get_bytes(&self, key: &Key) -> io::Result<Bytes> {
        let got = self.store.get(&key.object_path()).await.map_err(fault)?;
        got.bytes().await.map_err(fault)
    }

    /// The object as an open local file, for readers that need random access (result files
    /// are columnar): the local backend's own file, or a remote object streamed to an
    /// unlinked scratch file first.
    pub async fn open_file(&self, key: &Key) -> io::Result<std::fs::File> {
        let got = self.store.get(&key.object_path()).await.map_err(fault)?;
        match got.payload {
            GetResultPayload::File(file, _) => Ok(file),
            GetResultPayload::Stream(mut stream) => {
                use tokio::io::AsyncWriteExt;
                let file = tokio::task::spawn_blocking({
                    let dir = self.scratch.clone();
                    move || tempfile::tempfile_in(dir)
                })
                .await
                .map_err(io::Error::other)??;
                let mut out = tokio::fs::File::from_std(file);
                while let Some(chunk) = stream.next().await {
                    out.write_all(&chunk.map_err(fault)?).await?;
                }
                out.flush().await?;
                // At its start, as the local backend's file is.
                tokio::io::AsyncSeekExt::rewind(&mut out).await?;
                Ok(out.into_std().await)
            }
        }
    }

    /// The object as a named local file, for readers that take a path (the zip reader of
    /// archives): the local backend's own file, or a remote object downloaded to a scratch
    /// file removed when the copy is dropped.
    pub async fn local_copy(&self, key: &Key) -> io::Result<LocalCopy> {
        let got = self.store.get(&key.object_path()).await.map_err(fault)?;
        match got.payload {
            GetResultPayload::File(_, path) => Ok(LocalCopy { path, _temp: None }),
            GetResultPayload::Stream(mut stream) => {
                use tokio::io::AsyncWriteExt;
                let temp = tempfile::NamedTempFile::new_in(&self.scratch)?.into_temp_path();
                let mut out = tokio::fs::File::create(&temp).await?;
                while let Some(chunk) = stream.next().await {
                    out.write_all(&chunk.map_err(fault)?).await?;
                }
                out.flush().await?;
                Ok(LocalCopy {
                    path: temp.to_path_buf(),
                    _temp: Some(temp),
                })
            }
        }
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &Key) -> io::Result<bool> {
        match self.store.head(&key.object_path()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(fault(e)),
        }
    }

    /// Deletes `key`; already gone is fine.
    pub async fn delete(&self, key: &Key) -> io::Result<()> {
        match self.store.delete(&key.object_path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(fault(e)),
        }
    }

    /// Deletes every trajectory a sweep kept.
    pub async fn delete_trajectories(&self, sweep: &SweepId) -> io::Result<()> {
        let prefix = ObjectPath::from(trajectories(sweep));
        let names: Vec<ObjectPath> = self
            .store
            .list(Some(&prefix))
            .map(|meta| meta.map(|m| m.location))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(fault)?;
        for name in names {
            match self.store.delete(&name).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(fault(e)),
            }
        }
        if let Some(root) = &self.local_root {
            // The local backend leaves the emptied directory.
            let _ = std::fs::remove_dir(root.join(trajectories(sweep)));
        }
        Ok(())
    }
}

/// An object as a local file (see [`Objects::local_copy`]).
#[derive(Debug)]
pub struct LocalCopy {
    path: PathBuf,
    /// The downloaded copy, removed on drop (`None`: the local backend's own file).
    _temp: Option<tempfile::TempPath>,
}

impl LocalCopy {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How long a request to S3 is retried before its caller sees a fault: a run's end waits
/// for this, so it is short (object_store's default is three minutes).
const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(10);

fn s3_store(s3: &S3Setting) -> io::Result<Arc<dyn ObjectStore>> {
    // Client options first: the AWS variables (`AWS_ALLOW_HTTP`) set some of them.
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&s3.bucket)
        .with_client_options(ClientOptions::new().with_connect_timeout(Duration::from_secs(5)));
    for (name, value) in &s3.aws {
        let key: AmazonS3ConfigKey = name.to_ascii_lowercase().parse().map_err(fault)?;
        builder = builder.with_config(key, value.to_string());
    }
    let store = builder
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: S3_RETRY_TIMEOUT,
            ..RetryConfig::default()
        })
        .build()
        .map_err(fault)?;
    Ok(if s3.prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(store, s3.prefix.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_url_names_a_bucket_and_a_prefix() {
        let env = |name: &str| (name == "AWS_REGION").then(|| "eu-west-1".to_string());
        let Backend::S3(s3) = Backend::parse("s3://results/gateway/prod/", env).unwrap() else {
            panic!("not S3");
        };
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("results", "gateway/prod")
        );
        assert_eq!(
            s3.aws,
            vec![("AWS_REGION".into(), Secret::from("eu-west-1"))]
        );
        assert!(Backend::parse("s3:///x", |_| None).is_err());
        assert!(Backend::parse("/var/data", |_| None).is_err());
    }

    #[test]
    fn keys_keep_the_data_directory_layout() {
        let run = RunId::from("run_1".to_string());
        assert_eq!(Key::Result(run.clone()).path(), "runs/run_1.result");
        assert_eq!(Key::RunReference(run).path(), "runs/run_1.reference.csv");
        assert_eq!(Key::State("ab".into()).path(), "states/ab");
    }

    #[tokio::test]
    async fn a_large_file_goes_in_parts_and_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::open(&Backend::Local, dir.path()).unwrap();
        let file = dir.path().join("big");
        let bytes: Vec<u8> = (0..(PART_BYTES * 2 + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&file, &bytes).unwrap();
        let key = Key::Result(RunId::from("run_big".to_string()));
        objects.put_file(&key, &file).await.unwrap();
        let mut read = Vec::new();
        let mut kept = objects.open_file(&key).await.unwrap();
        std::io::Read::read_to_end(&mut kept, &mut read).unwrap();
        assert!(read == bytes, "the object differs from the file");
        objects.delete(&key).await.unwrap();
        assert!(!objects.exists(&key).await.unwrap());
        objects.delete(&key).await.unwrap();
    }
}
