//! Starting bwrap for one run and seeing it through: the rlimits and the unprivileged uid it
//! gets before exec, the two output pipes drained with a cap, the wall clock, and the kill that
//! takes the whole namespace down and still lets every process be reaped.

use std::collections::BTreeSet;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Gid, Pid, Uid};
use tokio::io::AsyncReadExt;

use super::jail::{self, CopyIn, Space};
use super::{Limits, RunOutcome, SandboxError, SourceFile};

/// Open files per process inside: plenty for an interpreter, few enough to matter.
const OPEN_FILES: u64 = 256;
/// Room in `/tmp` and `/work`, besides the sources: the file-size limit (RLIMIT_FSIZE caps one
/// file; this caps them all, since tmpfs pages are host memory).
const fn writable_bytes(limits: &Limits) -> u64 {
    limits.file_bytes
}
/// After bwrap exits, how long its pipes may stay open before we stop reading: the namespace is
/// gone by then, so this only bounds a surprise.
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// After the namespace's init is killed, how long bwrap gets to reap it and exit before its
/// whole process group is killed too.
const REAP_GRACE: Duration = Duration::from_secs(1);

/// When the server runs as root, each run gets a uid of its own. RLIMIT_NPROC counts processes
/// per real uid, and root is exempt from it, so code must run unprivileged; a uid per run
/// (rather than one shared `nobody`) keeps one run's fork bomb from using up the process count
/// of every other run at the same time. No file on the host belongs to these uids. Each server
/// process takes a block of its own, found from its pid (unique among live processes, below
/// 2^22), so two servers (or a test and the test it starts) never share a uid either.
const FIRST_SANDBOX_UID: u32 = 2_000_000_000;
/// Runs at once per process: 2e9 + 2^22 × 256 stays below the largest uid, 2^32 − 2.
const UIDS_PER_PROCESS: u32 = 256;

/// Slots in use, and where the search for a free one starts: round the block, never the lowest
/// free slot, because the kernel releases a finished run's namespaces (and their process
/// counts) a moment after bwrap exits, and a uid taken again at once finds them still counted
/// (bwrap: "Can't fork for pid 1: Resource temporarily unavailable").
static SLOTS: Mutex<(BTreeSet<u32>, u32)> = Mutex::new((BTreeSet::new(), 0));

/// A uid (and the gid of the same number) held for one run, given back on drop.
struct RunUid {
    slot: u32,
    uid: u32,
}

impl RunUid {
    fn take() -> Result<Self, SandboxError> {
        let mut slots = SLOTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (in_use, next) = &mut *slots;
        let slot = (0..UIDS_PER_PROCESS)
            .map(|offset| (*next + offset) % UIDS_PER_PROCESS)
            .find(|slot| !in_use.contains(slot))
            .ok_or_else(|| SandboxError::Unavailable("too many sandboxed runs at once".into()))?;
        in_use.insert(slot);
        *next = (slot + 1) % UIDS_PER_PROCESS;
        let block = std::process::id() % (1 << 22);
        Ok(RunUid { slot, uid: FIRST_SANDBOX_UID + block * UIDS_PER_PROCESS + slot })
    }
}

impl Drop for RunUid {
    fn drop(&mut self) {
        SLOTS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).0.remove(&self.slot);
    }
}

/// Who bwrap runs as, decided before the fork (nothing after it may allocate or take a lock).
enum Identity {
    /// We are root: become this uid/gid with no supplementary groups.
    Drop(RunUid),
    /// Not root: keep our uid. Its process count includes our own threads, so the limit is
    /// raised by that many.
    Keep { threads: u64 },
}

impl Identity {
    fn for_this_process() -> Result<Self, SandboxError> {
        if Uid::effective().is_root() {
            return Ok(Identity::Drop(RunUid::take()?));
        }
        Ok(Identity::Keep { threads: own_thread_count() })
    }

    fn process_limit(&self, limits: &Limits) -> u64 {
        match self {
            Identity::Drop(_) => limits.processes,
            Identity::Keep { threads } => limits.processes + threads,
        }
    }
}

fn own_thread_count() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(1)
}

pub(super) async fn run(
    bwrap: &Path,
    files: &[SourceFile],
    argv: &[&str],
    limits: &Limits,
) -> Result<RunOutcome, SandboxError> {
    // Sources go in through anonymous files that bwrap copies into /work: no host directory is
    // ever visible to the sandbox, and /work can be a tmpfs of bounded size.
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        let mut anonymous = tempfile::tempfile()?;
        anonymous.write_all(file.content.as_bytes())?;
        anonymous.rewind()?;
        sources.push(anonymous);
    }
    let (mut info_reader, info_writer) = std::io::pipe()?;
    let copy_in: Vec<CopyIn<'_>> =
        sources.iter().zip(files).map(|(fd, file)| CopyIn { fd: fd.as_raw_fd(), name: &file.name }).collect();
    let source_bytes: u64 = files.iter().map(|file| file.content.len() as u64).sum();
    let space = Space { work_bytes: source_bytes + writable_bytes(limits), tmp_bytes: writable_bytes(limits) };
    let args = jail::arguments(&copy_in, &space, info_writer.as_raw_fd(), argv);
    let mut inherited: Vec<RawFd> = copy_in.iter().map(|file| file.fd).collect();
    inherited.push(info_writer.as_raw_fd());

    let identity = Identity::for_this_process()?;
    let rlimits = [
        (Resource::RLIMIT_CORE, 0, 0),
        (Resource::RLIMIT_NOFILE, OPEN_FILES, OPEN_FILES),
        // A second between soft and hard: SIGXCPU first, SIGKILL if it is ignored.
        (Resource::RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),
        (Resource::RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (Resource::RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
        (Resource::RLIMIT_NPROC, identity.process_limit(limits), identity.process_limit(limits)),
    ];
    let drop_to = match &identity {
        Identity::Drop(run) => Some((Uid::from_raw(run.uid), Gid::from_raw(run.uid))),
        Identity::Keep { .. } => None,
    };

    let mut command = tokio::process::Command::new(bwrap);
    command
        .args(&args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // bwrap leads a process group of its own, so a kill reaches it and its namespace's init
        // (code inside is in a session of its own, and dies with the namespace).
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are sound. It makes only raw system calls (fcntl, setrlimit, setgroups, setgid,
    // setuid) on values computed before the fork; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(move || {
            for &fd in &inherited {
                // Our fds are close-on-exec; these few must reach bwrap (it closes them).
                if nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (resource, soft, hard) in rlimits {
                setrlimit(resource, soft, hard)?;
            }
            if let Some((uid, gid)) = drop_to {
                nix::unistd::setgroups(&[])?;
                nix::unistd::setgid(gid)?;
                nix::unistd::setuid(uid)?;
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = command.spawn()?;
    drop(command);
    // The child has its copies; ours would keep the info pipe open past bwrap.
    drop(info_writer);
    drop(sources);
    let group = Pid::from_raw(child.id().map_or(0, |id| id as i32));
    let mut guard = KillOnDrop { group, namespace_init: None, armed: true };

    let info = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        let _ = info_reader.read_to_string(&mut text);
        namespace_init_pid(&text)
    });
    tokio::pin!(info);
    let mut info_done = false;

    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let mut out = Captured::new(limits.output_bytes);
    let mut err = Captured::new(limits.output_bytes);
    let (mut out_buf, mut err_buf) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
    let (mut out_open, mut err_open) = (true, true);

    let wall_deadline = tokio::time::Instant::from_std(started + limits.wall);
    let mut hard_kill_at: Option<tokio::time::Instant> = None;
    let mut drain_until: Option<tokio::time::Instant> = None;
    let mut status = None;
    let mut timed_out = false;
    let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);

    loop {
        if status.is_some() && !out_open && !err_open {
            break;
        }
        tokio::select! {
            read = stdout.read(&mut out_buf), if out_open => match read {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => out.keep(&out_buf[..n]),
            },
            read = stderr.read(&mut err_buf), if err_open => match read {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => err.keep(&err_buf[..n]),
            },
            pid = &mut info, if !info_done => {
                info_done = true;
                guard.namespace_init = pid.ok().flatten();
            },
            exited = child.wait(), if status.is_none() => {
                status = Some(exited?);
                guard.armed = false;
                drain_until = Some(tokio::time::Instant::now() + DRAIN_GRACE);
            },
            () = tokio::time::sleep_until(wall_deadline), if status.is_none() && !timed_out => {
                timed_out = true;
                // Killing the namespace's init kills everything in it; bwrap, its parent, then
                // reaps it and exits. Without the pid yet, the process group is all we have.
                match guard.namespace_init {
                    Some(init) => {
                        let _ = kill(init, Signal::SIGKILL);
                        hard_kill_at = Some(tokio::time::Instant::now() + REAP_GRACE);
                    }
                    None => guard.kill_group(),
                }
            },
            () = tokio::time::sleep_until(hard_kill_at.unwrap_or(far)), if status.is_none() && hard_kill_at.is_some() => {
                hard_kill_at = None;
                guard.kill_group();
            },
            () = tokio::time::sleep_until(drain_until.unwrap_or(far)), if drain_until.is_some() => break,
        }
    }
    let elapsed = started.elapsed();
    let status = status.expect("the loop ends only after the child is reaped");
    let signal = status.signal().or_else(|| status.code().filter(|code| (129..160).contains(code)).map(|c| c - 128));
    Ok(RunOutcome {
        exit_code: status.code(),
        signal,
        output_truncated: out.truncated || err.truncated,
        stdout: out.into_string(),
        stderr: err.into_string(),
        timed_out,
        elapsed,
    })
}

/// `"child-pid": N` from bwrap's `--info-fd` JSON.
fn namespace_init_pid(info: &str) -> Option<Pid> {
    let value: serde_json::Value = serde_json::from_str(info).ok()?;
    let pid = value.get("child-pid")?.as_i64()?;
    Some(Pid::from_raw(i32::try_from(pid).ok()?))
}

/// Kills the sandbox if `run` is abandoned (its future dropped) before bwrap was reaped.
struct KillOnDrop {
    group: Pid,
    namespace_init: Option<Pid>,
    armed: bool,
}

impl KillOnDrop {
    fn kill_group(&self) {
        if self.armed && self.group.as_raw() > 0 {
            let _ = killpg(self.group, Signal::SIGKILL);
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(init) = self.namespace_init {
            let _ = kill(init, Signal::SIGKILL);
        }
        self.kill_group();
    }
}

/// One output stream: the first `cap` bytes, and whether there was more.
struct Captured {
    bytes: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Captured {
    fn new(cap: usize) -> Self {
        Self { bytes: Vec::new(), cap, truncated: false }
    }

    fn keep(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    fn into_string(self) -> String {
        match String::from_utf8(self.bytes) {
            Ok(text) => text,
            // Cut inside a character, or not text at all.
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        }
    }
}
