//! The real Spin runtime: the Spin CLI binaries the suite runs under, and one `spin up`
//! process per application, each with its own port and state directory, stopped when dropped.
//!
//! `spin up` serves through a child process of its own (`spin trigger http`). Each `spin up`
//! therefore gets a process group of its own, and stopping it kills the whole group. This
//! process becomes a child subreaper (Linux), so that the orphaned trigger process is reaped
//! here rather than left to init.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long `spin up` may take to listen (the first start compiles the component).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long reading the component's log waits for lines still being written.
const LOG_WAIT: Duration = Duration::from_secs(10);
/// The environment variable naming the Spin binaries to test under.
pub const SPIN_BIN: &str = "SPIN_BIN";

/// One Spin CLI binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpinBinary {
    pub path: PathBuf,
    /// What `spin --version` says, e.g. `4.0.2`.
    pub version: String,
}

impl SpinBinary {
    /// Runs `<path> --version`; the binary must answer `spin <version> …`.
    pub fn probe(path: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let path = path.into();
        let output = Command::new(&path)
            .arg("--version")
            .output()
            .with_context(|| format!("running {} --version", path.display()))?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let version = text.split_whitespace().nth(1).filter(|_| text.starts_with("spin "));
        match version {
            Some(version) if output.status.success() => Ok(Self { path, version: version.to_owned() }),
            _ => bail!("{} --version answered {text:?}: not a Spin CLI", path.display()),
        }
    }

    /// The binaries to run under: `$SPIN_BIN` (a path, or several separated by commas; each
    /// must be a working Spin CLI), else `spin` on `PATH`, else none.
    pub fn from_env() -> anyhow::Result<Vec<Self>> {
        match std::env::var(SPIN_BIN) {
            Ok(list) if !list.trim().is_empty() => list
                .split(',')
                .map(str::trim)
                .filter(|path| !path.is_empty())
                .map(|path| Self::probe(path).with_context(|| format!("{SPIN_BIN}={list}")))
                .collect(),
            _ => Ok(on_path("spin").and_then(|path| Self::probe(path).ok()).into_iter().collect()),
        }
    }

    /// `spin-4.0.2`
    pub fn name(&self) -> String {
        format!("spin-{}", self.version)
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A running `spin up`.
pub struct SpinUp {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
}

impl SpinUp {
    /// Writes `manifest` (a `spin.toml` whose paths are absolute) into a new temporary
    /// directory and starts `spin up` on it with `SPIN_VARIABLE_<NAME>` for each of `variables` (and
    /// none inherited from this process), on `127.0.0.1:<free port>`, with its state and log
    /// directories in a temporary directory of its own; waits until it listens.
    ///
    /// The state directory (`--state-dir`) holds the `default` key-value store: Spin keeps it in
    /// `<state dir>/sqlite_key_value.db` (spin `crates/runtime-config/src/lib.rs`,
    /// `key_value_config_resolver`; created when the component first opens the store), so
    /// every `spin up` starts with an empty store of its own, deleted with the directory.
    pub fn start(
        binary: &SpinBinary,
        manifest: &str,
        variables: &[(String, String)],
    ) -> anyhow::Result<Self> {
        Self::start_with(binary, manifest, variables, &[])
    }

    /// [`SpinUp::start`] with more `spin up` options (for benchmarks: `--disable-pooling`,
    /// `--quiet`, `--log-dir ""`; with a `--log-dir` of their own, [`SpinUp::log_lines`] sees
    /// nothing).
    pub fn start_with(
        binary: &SpinBinary,
        manifest: &str,
        variables: &[(String, String)],
        options: &[&str],
    ) -> anyhow::Result<Self> {
        let dir = temporary_dir()?;
        fs::write(dir.join("spin.toml"), manifest)?;
        let mut last_error = None;
        // A free port can be taken by someone else before Spin binds it: try another one.
        for _ in 0..3 {
            match Self::start_in(binary, variables, options, dir.clone()) {
                Ok(spin) => return Ok(spin),
                Err(error) if format!("{error:#}").contains("Address already in use") => {
                    last_error = Some(error)
                }
                Err(error) => {
                    let _ = fs::remove_dir_all(&dir);
                    return Err(error);
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no free port")))
    }

    fn start_in(
        binary: &SpinBinary,
        variables: &[(String, String)],
        options: &[&str],
        dir: PathBuf,
    ) -> anyhow::Result<Self> {
        let manifest = dir.join("spin.toml");
        let addr = free_port()?;
        let mut command = Command::new(&binary.path);
        command
            .arg("up")
            .arg("--from")
            .arg(&manifest)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(options)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("spin.stdout"))?)
            .stderr(fs::File::create(dir.join("spin.stderr"))?);
        if !options.contains(&"--log-dir") {
            command.arg("--log-dir").arg(dir.join("logs"));
        }
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SPIN_VARIABLE_") {
                command.env_remove(name);
            }
        }
        for (name, value) in variables {
            command.env(format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()), value);
        }
        own_process_group(&mut command);
        let child = command.spawn().with_context(|| format!("starting {}", binary.path.display()))?;
        let component = crate::manifest::component_id(&fs::read_to_string(&manifest)?)?;
        let log = dir.join("logs").join(format!("{component}_stdout.txt"));
        let mut spin = Self { child, addr, dir, log };
        spin.wait_until_listening().map_err(|error| {
            let output = spin.output();
            spin.stop();
            error.context(output)
        })?;
        Ok(spin)
    }

    fn wait_until_listening(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("spin up exited ({status}) before it listened");
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("spin up did not listen on {} within {START_TIMEOUT:?}", self.addr);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:<port>`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The processes of this `spin up`: itself and the trigger process that serves.
    pub fn pids(&self) -> Vec<u32> {
        process_group_members(self.child.id())
    }

    /// The component's stdout lines, after waiting (boundedly) until there are `at_least`.
    pub fn log_lines(&self, at_least: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            let complete = text.ends_with('\n') || text.is_empty();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            if (lines.len() >= at_least && complete) || started.elapsed() > LOG_WAIT {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What Spin itself printed, both streams, for failure messages.
    pub fn output(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("spin up stdout:\n{}\nspin up stderr:\n{}", read("spin.stdout"), read("spin.stderr"))
    }

    fn stop(&mut self) {
        #[cfg(unix)]
        {
            let group = self.child.id() as libc::pid_t;
            // SAFETY: plain system calls on the group this value names; the group is ours.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
            let _ = self.child.wait();
            // The trigger process, orphaned and (as this process is a subreaper) ours to reap.
            // SAFETY: waits only for members of that group; a null status pointer is allowed.
            while unsafe { libc::waitpid(-group, std::ptr::null_mut(), 0) } > 0 {}
        }
        #[cfg(not(unix))]
        {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for SpinUp {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A new empty directory under the system's temporary directory.
pub(crate) fn temporary_dir() -> anyhow::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!("podgateway-spin-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let dir = std::env::temp_dir().join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Puts `spin up` in a process group of its own (its trigger process inherits it). On Linux it
/// also gets SIGTERM when the thread that started it ends, even if this process is killed
/// before its `Drop` runs: `spin up` then stops its trigger processes itself.
fn own_process_group(command: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        static SUBREAPER: std::sync::Once = std::sync::Once::new();
        // SAFETY: prctl with integer arguments only.
        SUBREAPER.call_once(|| unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        });
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
}

/// The processes whose process group is `group` (Linux `/proc`; empty elsewhere).
fn process_group_members(group: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // `pid (comm) state ppid pgrp …`: the command may hold spaces and parentheses.
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after_comm.split_whitespace().nth(2).and_then(|pgrp| pgrp.parse::<u32>().ok()) == Some(group)
        })
        .collect()
}
