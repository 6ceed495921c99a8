//! Running untrusted code — programs a model wrote from a stranger's brief — under bubblewrap.
//!
//! This module owns the decision whether code may run at all on this machine
//! ([`Availability::probe`], driven by `--code-exec`), and every run: a fresh namespace with no
//! network, no view of the host's processes, environment or files beyond a read-only `/usr`,
//! a small writable `/work` and `/tmp`, and resource limits on CPU, memory, file size, processes
//! and wall time. bwrap creates the namespaces; nothing here writes namespace code by hand.
//!
//! * [`jail`] — the bwrap command line: what the sandbox sees.
//! * [`spawn`] — starting it with rlimits and an unprivileged uid, capping output, the wall clock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod jail;
mod spawn;

/// Whether code a task delivers is run before it is sent (`--code-exec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeExec {
    /// Never run delivered code.
    Off,
    /// Run it when bubblewrap works on this machine; otherwise go on without running it.
    #[default]
    Auto,
    /// Refuse to start unless code can run in the sandbox.
    Required,
}

/// What one run may consume; past any of these the run is stopped or the call fails inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// CPU time (RLIMIT_CPU): SIGXCPU at the limit, SIGKILL a second later.
    pub cpu_seconds: u64,
    /// Address space (RLIMIT_AS) of each process: allocations past it fail.
    pub memory_bytes: u64,
    /// Largest file a process may write (RLIMIT_FSIZE); also the size of `/work` and of `/tmp`
    /// (each a tmpfs), so many small files cannot fill the host's memory either.
    pub file_bytes: u64,
    /// Processes and threads at once (RLIMIT_NPROC), which is what stops a fork bomb.
    pub processes: u64,
    /// Wall-clock time, after which the whole sandbox is killed.
    pub wall: Duration,
    /// Bytes kept of stdout and of stderr, each; the rest is read and discarded.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_seconds: 10,
            // Node reserves a large virtual address space at start (its heap cage); `node -e 1`
            // runs under 1 GiB of RLIMIT_AS on Node 20 (tests/sandbox.rs checks it).
            memory_bytes: 1 << 30,
            file_bytes: 16 << 20,
            processes: 64,
            wall: Duration::from_secs(10),
            output_bytes: 64 << 10,
        }
    }
}

/// A file written into the sandbox's `/work` before the command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// A plain file name (no `/`, not `.` or `..`, not empty).
    pub name: String,
    pub content: String,
}

/// What happened to one run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The command's exit code. A command killed by a signal inside the sandbox shows as
    /// 128 + the signal (bwrap's convention), and `signal` is set too.
    pub exit_code: Option<i32>,
    /// The signal that ended the run, if one did (SIGKILL when the wall limit was reached).
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The wall limit was reached and the sandbox was killed.
    pub timed_out: bool,
    /// stdout or stderr was longer than `Limits::output_bytes` and was cut there.
    pub output_truncated: bool,
    pub elapsed: Duration,
}

impl RunOutcome {
    /// The command finished by itself with exit code 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Code cannot run here; the text says why, for an operator or a buyer.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0:?} is not a plain file name (no '/', '.', '..' or empty names)")]
    BadFileName(String),
    #[error("{name} is {bytes} bytes, more than the sandbox's file limit of {limit}")]
    FileTooLarge { name: String, bytes: usize, limit: u64 },
    #[error("no command to run")]
    NoCommand,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A working bubblewrap: what [`Sandbox::run`] needs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Sandbox {
    inner: Arc<SandboxInner>,
}

#[derive(Debug)]
struct SandboxInner {
    bwrap: PathBuf,
}

/// What the operator's `--code-exec` and this machine allow.
#[derive(Clone, Debug)]
pub enum Availability {
    Ready(Sandbox),
    Unavailable { why: String },
}

/// By variant (and reason): two ready sandboxes are interchangeable.
impl PartialEq for Availability {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Ready(_), Self::Ready(_)) => true,
            (Self::Unavailable { why: a }, Self::Unavailable { why: b }) => a == b,
            _ => false,
        }
    }
}

impl Availability {
    /// `Off` → unavailable, saying so. `Auto` and `Required`: find bwrap (`bwrap`, else on
    /// `PATH`) and run `true` in the full sandbox once; any failure makes it unavailable with a
    /// sentence saying why, and for `Required` that is an error, so the server refuses to start.
    pub async fn probe(mode: CodeExec, bwrap: Option<&Path>) -> Result<Availability, SandboxError> {
        if mode == CodeExec::Off {
            return Ok(Availability::Unavailable { why: "code execution is off (--code-exec off)".into() });
        }
        match probe_sandbox(bwrap).await {
            Ok(sandbox) => Ok(Availability::Ready(sandbox)),
            Err(why) if mode == CodeExec::Required => Err(SandboxError::Unavailable(why)),
            Err(why) => Ok(Availability::Unavailable { why }),
        }
    }

    pub fn sandbox(&self) -> Option<&Sandbox> {
        match self {
            Availability::Ready(sandbox) => Some(sandbox),
            Availability::Unavailable { .. } => None,
        }
    }

    pub fn why_not(&self) -> Option<&str> {
        match self {
            Availability::Ready(_) => None,
            Availability::Unavailable { why } => Some(why),
        }
    }
}

/// The sandbox, or a sentence saying why there is none.
async fn probe_sandbox(bwrap: Option<&Path>) -> Result<Sandbox, String> {
    let bwrap = match bwrap {
        Some(path) if path.is_file() => path.to_path_buf(),
        Some(path) => {
            return Err(format!("bubblewrap (bwrap) is not installed at {} (--bwrap-path)", path.display()));
        }
        None => find_on_path("bwrap")
            .ok_or_else(|| "bubblewrap (bwrap) is not installed (apt-get install bubblewrap)".to_string())?,
    };
    let sandbox = Sandbox { inner: Arc::new(SandboxInner { bwrap }) };
    let outcome = sandbox
        .run(&[], &["true"], &Limits::default())
        .await
        .map_err(|err| format!("the sandbox could not be started: {err}"))?;
    if outcome.succeeded() {
        return Ok(sandbox);
    }
    let first_line = outcome.stderr.lines().map(str::trim).find(|line| !line.is_empty());
    Err(match first_line {
        Some(line) => format!("the sandbox could not be set up: {line}"),
        None if outcome.timed_out => "the sandbox could not be set up: `true` did not finish in time".into(),
        None => format!("the sandbox could not be set up: `true` exited with {:?}", outcome.exit_code),
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

impl Sandbox {
    /// Writes `files` into a fresh empty `/work`, runs `argv` there (argv[0] an absolute path
    /// or a name on the sandbox's `PATH`, /usr/local/bin:/usr/bin:/bin) under `limits`, kills
    /// the whole sandbox at `limits.wall`, keeps at most `limits.output_bytes` of each stream,
    /// and says what happened. Nothing runs outside the sandbox.
    pub async fn run(&self, files: &[SourceFile], argv: &[&str], limits: &Limits) -> Result<RunOutcome, SandboxError> {
        if argv.is_empty() {
            return Err(SandboxError::NoCommand);
        }
        for file in files {
            check_file_name(&file.name)?;
            if file.content.len() as u64 > limits.file_bytes {
                return Err(SandboxError::FileTooLarge {
                    name: file.name.clone(),
                    bytes: file.content.len(),
                    limit: limits.file_bytes,
                });
            }
        }
        spawn::run(&self.inner.bwrap, files, argv, limits).await
    }

    /// The path of an interpreter present inside the sandbox (`/usr/local/bin`, `/usr/bin` or
    /// `/bin`), e.g. for "python3" or "node".
    pub fn interpreter(&self, name: &str) -> Option<String> {
        if name.is_empty() || name.contains('/') {
            return None;
        }
        // The sandbox sees the host's /usr read-only, and /bin as the host has it.
        jail::PATH_INSIDE
            .split(':')
            .map(|dir| format!("{dir}/{name}"))
            .find(|candidate| is_executable(Path::new(candidate)))
    }
}

fn check_file_name(name: &str) -> Result<(), SandboxError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(SandboxError::BadFileName(name.to_string()));
    }
    Ok(())
}
