//! The real `routerstats-collector serve` as a child process, so its memory and CPU time can be
//! read from /proc without the load generator's mixed in.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use routerstats_tests::harness::{free_port, http_get};

use crate::sys::{self, Mem};

/// Why the collector could not be started or driven.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("the collector binary {} does not exist: build it with `cargo build --profile release-fast -p routerstats-collector` or pass --collector-bin", .0.display())]
    MissingBinary(PathBuf),
    #[error("the collector exited at start ({status}); log:\n{log}")]
    Exited { status: String, log: String },
    #[error("the collector did not answer /health within 30 s; log:\n{0}")]
    NotReady(String),
    #[error("`{cmd}` failed: {stderr}")]
    Cli { cmd: String, stderr: String },
}

/// Where `routerstats-collector` is: `explicit`, else next to the running benchmark binary
/// (`target/<profile>/`).
pub fn collector_bin(explicit: Option<PathBuf>) -> Result<PathBuf, CollectorError> {
    let path = match explicit {
        Some(p) => p,
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("routerstats-collector")))
            .unwrap_or_else(|| PathBuf::from("routerstats-collector")),
    };
    if path.exists() {
        Ok(path)
    } else {
        Err(CollectorError::MissingBinary(path))
    }
}

/// A running collector process (killed on drop).
pub struct CollectorProc {
    child: Option<Child>,
    bin: PathBuf,
    pub data_dir: PathBuf,
    pub ingest: SocketAddr,
    pub api: SocketAddr,
    pub log_path: PathBuf,
}

impl CollectorProc {
    /// Starts `bin serve` on free loopback ports with its data in `data_dir`, `config_toml`
    /// written to a config file (empty for defaults), and `RUST_LOG=rust_log`; waits for
    /// `/health`. The log goes to `data_dir/../collector.log`.
    pub fn start(
        bin: &Path,
        data_dir: &Path,
        config_toml: &str,
        rust_log: &str,
    ) -> Result<CollectorProc, CollectorError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |err| CollectorError::Io { path, err }
        };
        std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
        let parent = data_dir.parent().unwrap_or(data_dir);
        let config = parent.join("collector.toml");
        std::fs::write(&config, config_toml).map_err(io(&config))?;
        let log_path = parent.join("collector.log");
        let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
        let ingest: SocketAddr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let api: SocketAddr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir)
            .args([
                "--ingest-listen",
                &ingest.to_string(),
                "--api-listen",
                &api.to_string(),
            ])
            .env("RUST_LOG", rust_log)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io(bin))?;
        let mut c = CollectorProc {
            child: Some(child),
            bin: bin.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            ingest,
            api,
            log_path,
        };
        let start = Instant::now();
        loop {
            if let Some(Ok(Some(status))) = c.child.as_mut().map(|ch| ch.try_wait()) {
                return Err(CollectorError::Exited {
                    status: status.to_string(),
                    log: c.log(),
                });
            }
            if matches!(http_get(api, "/health", &[]), Ok((200, _))) {
                return Ok(c);
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(CollectorError::NotReady(c.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// The collector's memory now.
    pub fn mem(&self) -> Mem {
        sys::mem_of(&self.pid().to_string()).unwrap_or_default()
    }

    /// The collector's CPU time so far (10 ms resolution).
    pub fn cpu(&self) -> Duration {
        sys::cpu_of(self.pid()).unwrap_or_default()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// An enrollment token for `uses` routers.
    pub fn token(&self, name: &str, uses: usize) -> Result<String, CollectorError> {
        self.token_at_site(name, uses, None)
    }

    /// An enrollment token for `uses` routers of `site`.
    pub fn token_at_site(
        &self,
        name: &str,
        uses: usize,
        site: Option<&str>,
    ) -> Result<String, CollectorError> {
        let uses = uses.to_string();
        let mut args = vec![
            "token", "create", "--name", name, "--uses", &uses, "--ttl", "2h",
        ];
        if let Some(site) = site {
            args.extend(["--site", site]);
        }
        self.cli(&args)
    }

    /// A new API key with `role` (`read` or `admin`), made by `routerstats-collector apikey
    /// create` (the path an operator takes).
    pub fn api_key(&self, role: &str, name: &str) -> Result<String, CollectorError> {
        self.cli(&["apikey", "create", "--role", role, "--name", name])
    }

    /// Runs `bin ARGS --data-dir DIR` and returns its trimmed stdout.
    fn cli(&self, args: &[&str]) -> Result<String, CollectorError> {
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .output()
            .map_err(|err| CollectorError::Io {
                path: self.bin.clone(),
                err,
            })?;
        if !out.status.success() {
            return Err(CollectorError::Cli {
                cmd: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Stops it (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for CollectorProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The file system type under `path` (from /proc/mounts, longest matching mount point), so a
/// figure with fsync in it says whether the fsync was real.
pub fn fs_type(path: &Path) -> String {
    let Ok(path) = path.canonicalize() else {
        return "unknown".into();
    };
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [_, mnt, ty, ..] if path.starts_with(mnt) => Some((mnt.len(), ty.to_string())),
                _ => None,
            }
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, ty)| ty)
        .unwrap_or_else(|| "unknown".into())
}
