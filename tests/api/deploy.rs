//! The deployment as shipped: the container's entry point runs the service unprivileged, and
//! the workers of `fly.toml` (one machine) and `deploy/fly.scale.toml` (servers and worker
//! nodes) fit in the memory of the machines they ask for.

use std::process::{Command, Stdio};

use crate::common::{Binary, api_client, free_port};

/// `key = "value"` lines of a TOML file (enough for fly.toml's flat tables).
fn toml_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v.strip_prefix('"')?.strip_suffix('"')?;
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

#[test]
fn fly_toml_runs_workers_that_fit_in_its_machine() {
    check_fly_file(include_str!("../../fly.toml"), &|_| None);
}

/// The multi-machine sample: its settings are valid once its secrets are set (the database
/// URL and the bucket's credentials, which the file only names), its workers fit, and its
/// processes are the binary's commands.
#[test]
fn the_multi_machine_fly_file_is_valid_with_its_secrets_and_runs_the_binarys_commands() {
    let text = include_str!("../../deploy/fly.scale.toml");
    let secrets = |name: &str| {
        Some(match name {
            "FMU_GATEWAY_DATABASE_URL" => "postgres://fmu@db.internal/fmu_gateway".to_string(),
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => "secret".into(),
            "AWS_REGION" => "auto".into(),
            "AWS_ENDPOINT_URL" => "https://fly.storage.tigris.dev".into(),
            _ => return None,
        })
    };
    let config = check_fly_file(text, &secrets);
    assert!(config.database_url.is_some());
    let values = toml_values(text);
    for process in ["app", "worker"] {
        // The last `app = …`: the one of [processes], after the app's name at the top.
        let command = &values.iter().rev().find(|(k, _)| k == process).unwrap().1;
        let help = Command::new(env!("CARGO_BIN_EXE_fmu-gateway"))
            .args([command.as_str(), "--help"])
            .output()
            .unwrap();
        assert!(
            help.status.success(),
            "{process} = {command:?} is no command"
        );
    }
    // Every setting it names is one the README documents.
    let readme = include_str!("../../README.md");
    for (name, _) in &values {
        if name.starts_with("FMU_GATEWAY_") {
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} is not documented"
            );
        }
    }
}

/// The file's settings as the binary reads them (with `secrets` for what it leaves out),
/// checked against the memory of the machine it asks for.
fn check_fly_file(text: &str, secrets: &dyn Fn(&str) -> Option<String>) -> fmu_gateway::Config {
    let values = toml_values(text);
    let get = |name: &str| {
        values
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| secrets(name))
    };
    let memory = get("memory").expect("fly.toml sets the machine's memory");
    let gb: u64 = memory.strip_suffix("gb").unwrap().parse().unwrap();
    // The kernel keeps some of the machine for itself: MemTotal is ~4% below the size.
    let mem_total = (gb << 30) / 100 * 95;
    let config = fmu_gateway::Config::from_env(
        "127.0.0.1:0".parse().unwrap(),
        std::env::temp_dir(),
        |name| get(name),
    )
    .expect("fly.toml's settings are valid");
    assert_eq!(config.workers, 1);
    fmu_gateway::machine::check_memory(&config, Some(mem_total)).unwrap();
    // And the check is real: the old 512 MB machine would be refused.
    assert!(fmu_gateway::machine::check_memory(&config, Some(512 << 20)).is_err());
    config
}

/// A field of `/proc/<pid>/status`.
fn status_field(pid: u32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_container_entry_point_never_runs_the_service_as_root() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("left-by-root")).unwrap();
    // The volume's parent must be reachable by the service user.
    let open = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(dir.path(), open).unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_fmu-gateway"));
    let path = format!(
        "{}:{}",
        exe.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = free_port();
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    let mut command = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/entrypoint.sh"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("PATH", path)
        .env("FMU_GATEWAY_DATA_DIR", &data)
        // Every Debian has `nobody`; the image has its own `fmu`.
        .env("FMU_GATEWAY_USER", "nobody")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Binary::spawn(command, port).await;
    let pid = server.child.id();
    let ready = api_client()
        .get(format!("{}/ready", server.url))
        .send()
        .await
        .unwrap();
    let report: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(report["ready"], true, "{report}");
    let layers = report["sandbox"].as_array().unwrap();
    assert!(layers.len() >= 9, "{report}");
    for layer in layers {
        assert!(
            layer["active"] == true || layer["required"] == false,
            "every required layer is in force for the unprivileged service: {layer}"
        );
    }
    let uid: u32 = status_field(pid, "Uid").parse().unwrap();
    if root {
        assert_eq!(uid, 65534, "the service runs as the unprivileged user");
        assert_eq!(status_field(pid, "NoNewPrivs"), "1");
        assert_eq!(status_field(pid, "CapEff"), "0000000000000000");
        assert_eq!(status_field(pid, "CapBnd"), "0000000000000000");
        let owner = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata(data.join("left-by-root")).unwrap(),
        );
        assert_eq!(owner, 65534, "the volume was handed to the service user");
    } else {
        // SAFETY: as above.
        assert_eq!(uid, unsafe { libc::getuid() }, "started as itself");
    }
}
