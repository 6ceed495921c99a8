//! The sandbox against hostile code, with real bubblewrap and the host's python3: no network,
//! no host files or environment, no writes outside its directory, and every limit holding
//! (wall time, processes, memory, output) while the server beside it keeps answering.
//!
//! Nothing is skipped: without bubblewrap these tests fail, saying to install it (CI does).

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use bidder::engine::fake::FakeGenerator;
use bidder::sandbox::{Availability, CodeExec, Limits, RunOutcome, Sandbox, SandboxError, SourceFile};
use common::fake_server::{TestServer, client};

async fn sandbox() -> Sandbox {
    match Availability::probe(CodeExec::Required, None).await {
        Ok(Availability::Ready(sandbox)) => sandbox,
        Ok(other) => panic!("the sandbox is not ready: {other:?}"),
        Err(err) => panic!(
            "the sandbox does not work here ({err}); install bubblewrap (apt-get install bubblewrap): \
             these tests need it, and CI installs it"
        ),
    }
}

fn python(sandbox: &Sandbox) -> String {
    sandbox.interpreter("python3").expect("python3 in /usr/bin (apt-get install python3)")
}

/// Runs `script` as `main.py` with python3, extra arguments after it.
async fn run_python(sandbox: &Sandbox, script: &str, args: &[&str], limits: &Limits) -> RunOutcome {
    let python = python(sandbox);
    let files = [SourceFile { name: "main.py".into(), content: script.into() }];
    let mut argv = vec![python.as_str(), "main.py"];
    argv.extend_from_slice(args);
    sandbox.run(&files, &argv, limits).await.expect("the run starts")
}

fn short(wall_secs: u64) -> Limits {
    Limits { wall: Duration::from_secs(wall_secs), ..Limits::default() }
}

#[tokio::test]
async fn a_well_behaved_script_writes_in_its_directory_and_exits_zero() {
    let sandbox = sandbox().await;
    let script = "open('out.txt', 'w').write('42')\nprint(open('out.txt').read(), open('data.txt').read())\n";
    let files = [
        SourceFile { name: "main.py".into(), content: script.into() },
        SourceFile { name: "data.txt".into(), content: "given".into() },
    ];
    let python = python(&sandbox);
    let outcome = sandbox.run(&files, &[&python, "main.py"], &Limits::default()).await.unwrap();
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.stdout, "42 given\n");
    assert!(!outcome.timed_out && !outcome.output_truncated && outcome.signal.is_none());
}

#[tokio::test]
async fn no_network_neither_the_internet_nor_the_host() {
    let sandbox = sandbox().await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let script = r#"
import socket, sys
for host, port in (("1.1.1.1", 80), ("127.0.0.1", int(sys.argv[1]))):
    try:
        socket.create_connection((host, port), timeout=2).close()
        print("CONNECTED", host)
    except OSError as err:
        print("failed", host, err)
"#;
    let outcome = run_python(&sandbox, script, &[&port], &short(8)).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert!(!outcome.stdout.contains("CONNECTED"), "{}", outcome.stdout);
    assert_eq!(outcome.stdout.matches("failed").count(), 2, "{}", outcome.stdout);
    assert!(listener.accept().is_err(), "nothing may have reached the host's listener");
}

#[tokio::test]
async fn host_files_outside_its_directory_cannot_be_read() {
    let sandbox = sandbox().await;
    let in_tmp = tempfile::tempdir_in("/tmp").unwrap();
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_else(|| "/root".into());
    let in_home = tempfile::tempdir_in(&home).unwrap();
    let mut paths = Vec::new();
    for dir in [in_tmp.path(), in_home.path()] {
        let secret = dir.join("secret.txt");
        std::fs::write(&secret, "TOP-SECRET-VALUE").unwrap();
        paths.push(secret.display().to_string());
    }
    let script = r#"
import sys
for path in sys.argv[1:] + ["/etc/shadow", "/etc/passwd", "/root/.bashrc"]:
    try:
        print("READ", path, open(path).read())
    except OSError as err:
        print("unreadable", path, type(err).__name__)
"#;
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    let outcome = run_python(&sandbox, script, &args, &Limits::default()).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert!(!outcome.stdout.contains("READ") && !outcome.stdout.contains("TOP-SECRET"), "{}", outcome.stdout);
    assert_eq!(outcome.stdout.matches("unreadable").count(), 5, "{}", outcome.stdout);
}

/// The environment variable this process is started with by
/// `the_servers_environment_is_invisible`, which runs the probe below in a child test process:
/// setting it here instead would race the other tests' threads reading the environment.
const SECRET_VARIABLE: &str = "BIDDER_TEST_SECRET";
const SECRET_VALUE: &str = "sandbox-env-secret-4f1c";

#[tokio::test]
async fn the_servers_environment_is_invisible() {
    let this_test_binary = std::env::current_exe().unwrap();
    let child = tokio::process::Command::new(this_test_binary)
        .args(["environment_probe_run_by_the_test_above", "--exact", "--nocapture", "--test-threads=1"])
        .env(SECRET_VARIABLE, SECRET_VALUE)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(child.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&child.stderr));
    assert!(stdout.contains("environment probe: done"), "the probe did not run: {stdout}");
}

/// Half of the test above: runs in a process whose environment holds the secret.
#[tokio::test]
async fn environment_probe_run_by_the_test_above() {
    if std::env::var(SECRET_VARIABLE).as_deref() != Ok(SECRET_VALUE) {
        println!("environment probe: only meaningful when run by the_servers_environment_is_invisible");
        return;
    }
    let sandbox = sandbox().await;
    let script = r#"
import os, sys
found = [k for k, v in os.environ.items() if "secret" in (k + v).lower()]
for pid in [p for p in os.listdir("/proc") if p.isdigit()] + [sys.argv[1]]:
    try:
        if b"sandbox-env-secret" in open(f"/proc/{pid}/environ", "rb").read():
            found.append(pid)
    except OSError:
        pass
print("FOUND", found, "ppid", os.getppid(), "env", sorted(os.environ))
"#;
    let host_pid = std::process::id().to_string();
    let outcome = run_python(&sandbox, script, &[&host_pid], &Limits::default()).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    assert!(outcome.stdout.starts_with("FOUND []"), "{}", outcome.stdout);
    println!("environment probe: done");
}

#[tokio::test]
async fn nothing_is_written_outside_its_directory() {
    let sandbox = sandbox().await;
    let marker = format!("bidder-sandbox-escape-{}", std::process::id());
    let host_tmp = std::path::Path::new("/tmp").join(&marker);
    let script = r#"
import sys
for path in ["/tmp/" + sys.argv[1], "/usr/" + sys.argv[1], "/" + sys.argv[1], "/dev/shm/" + sys.argv[1]]:
    try:
        open(path, "w").write("x")
        print("wrote", path)
    except OSError as err:
        print("refused", path, type(err).__name__)
"#;
    let outcome = run_python(&sandbox, script, &[&marker], &Limits::default()).await;
    assert!(outcome.succeeded(), "{outcome:?}");
    // Its own /tmp is writable, and gone with it; the rest is read-only.
    assert!(outcome.stdout.contains(&format!("wrote /tmp/{marker}")), "{}", outcome.stdout);
    assert_eq!(outcome.stdout.matches("refused").count(), 3, "{}", outcome.stdout);
    assert!(!host_tmp.exists(), "{} appeared on the host", host_tmp.display());
    assert!(!std::path::Path::new("/usr").join(&marker).exists());
}

#[tokio::test]
async fn busy_and_sleeping_code_is_killed_at_the_wall_limit() {
    let sandbox = sandbox().await;
    let limits = short(1);
    let started = Instant::now();
    let (busy, sleeping) = tokio::join!(
        run_python(&sandbox, "while True:\n    pass\n", &[], &limits),
        run_python(&sandbox, "import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n", &[], &limits),
    );
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    for outcome in [&busy, &sleeping] {
        assert!(outcome.timed_out && !outcome.succeeded(), "{outcome:?}");
        assert!(outcome.elapsed < limits.wall + Duration::from_secs(1), "{outcome:?}");
        assert_eq!(outcome.signal, Some(9), "{outcome:?}");
    }
    assert_eq!(sleeping.stdout, "sleeping\n", "output before the kill is kept");
}

/// A fork bomb that keeps forking past every refusal; `marker` tags its processes' command
/// lines so the host can look for survivors.
const FORK_BOMB: &str = r#"
import os, sys
while True:
    try:
        os.fork()
    except OSError:
        pass
"#;

fn processes_tagged(marker: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter(|entry| {
            std::fs::read(entry.path().join("cmdline"))
                .is_ok_and(|cmdline| cmdline.windows(marker.len()).any(|w| w == marker.as_bytes()))
        })
        .count()
}

#[tokio::test]
async fn a_fork_bomb_is_bounded_and_leaves_nothing_behind() {
    let sandbox = sandbox().await;
    let marker = format!("fork-bomb-{}-{}", std::process::id(), line!());
    let limits = short(2);
    let started = Instant::now();
    let outcome = run_python(&sandbox, FORK_BOMB, &[&marker], &limits).await;
    assert!(outcome.timed_out, "{outcome:?}");
    assert!(started.elapsed() < limits.wall + Duration::from_secs(1), "took {:?}", started.elapsed());
    // The whole namespace died with its init: no survivor, even a moment later.
    assert_eq!(processes_tagged(&marker), 0, "fork bomb processes survived the run");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(processes_tagged(&marker), 0, "fork bomb processes survived the run");
    // The host can still start processes, and the sandbox still runs code.
    assert!(std::process::Command::new("true").status().unwrap().success());
    let after = run_python(&sandbox, "print('fine')\n", &[], &Limits::default()).await;
    assert!(after.succeeded() && after.stdout == "fine\n", "{after:?}");
}

#[tokio::test]
async fn memory_is_bounded() {
    let sandbox = sandbox().await;
    let outcome = run_python(&sandbox, "block = bytearray(4 << 30)\nprint('allocated')\n", &[], &short(8)).await;
    assert!(!outcome.succeeded(), "{outcome:?}");
    assert!(!outcome.stdout.contains("allocated"), "{outcome:?}");
    assert!(outcome.stderr.contains("MemoryError") || outcome.signal.is_some(), "{outcome:?}");
    let after = run_python(&sandbox, "print('fine')\n", &[], &Limits::default()).await;
    assert!(after.succeeded(), "{after:?}");
}

#[tokio::test]
async fn output_is_capped_and_the_rest_discarded() {
    let sandbox = sandbox().await;
    let limits = Limits::default();
    let script = "import sys\nsys.stdout.write('x' * 10_000_000)\nsys.stderr.write('e' * 10_000_000)\n";
    let outcome = run_python(&sandbox, script, &[], &limits).await;
    assert!(outcome.succeeded(), "the writer is never blocked: {outcome:?}");
    assert!(outcome.output_truncated);
    assert_eq!(outcome.stdout.len(), limits.output_bytes);
    assert_eq!(outcome.stderr.len(), limits.output_bytes);
}

#[tokio::test]
async fn node_starts_under_the_default_memory_limit() {
    let sandbox = sandbox().await;
    let node = sandbox.interpreter("node").expect("node in /usr/bin (apt-get install nodejs)");
    let files = [SourceFile { name: "main.js".into(), content: "console.log(6 * 7)\n".into() }];
    let outcome = sandbox.run(&files, &[&node, "main.js"], &Limits::default()).await.unwrap();
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.stdout, "42\n");
}

#[tokio::test]
async fn files_with_bad_names_are_refused() {
    let sandbox = sandbox().await;
    for name in ["", ".", "..", "a/b", "/etc/passwd", "../escape.py"] {
        let files = [SourceFile { name: name.into(), content: "print(1)".into() }];
        let result = sandbox.run(&files, &["true"], &Limits::default()).await;
        assert!(matches!(result, Err(SandboxError::BadFileName(_))), "{name:?}: {result:?}");
    }
    assert!(matches!(sandbox.run(&[], &[], &Limits::default()).await, Err(SandboxError::NoCommand)));
}

#[tokio::test]
async fn probe_says_why_code_cannot_run() {
    let missing = std::path::Path::new("/nonexistent/bwrap");
    let auto = Availability::probe(CodeExec::Auto, Some(missing)).await.unwrap();
    assert!(auto.sandbox().is_none());
    assert!(auto.why_not().unwrap().contains("bubblewrap"), "{auto:?}");

    let off = Availability::probe(CodeExec::Off, None).await.unwrap();
    assert!(off.why_not().unwrap().contains("off"), "{off:?}");

    let required = Availability::probe(CodeExec::Required, Some(missing)).await;
    assert!(matches!(&required, Err(SandboxError::Unavailable(why)) if why.contains("bubblewrap")), "{required:?}");

    let ready = Availability::probe(CodeExec::Auto, None).await.unwrap();
    assert!(ready.sandbox().is_some() && ready.why_not().is_none(), "{ready:?}");
    assert!(ready.sandbox().unwrap().interpreter("no-such-interpreter").is_none());
    assert!(ready.sandbox().unwrap().interpreter("../bin/sh").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_answering_while_hostile_code_runs() {
    let sandbox = sandbox().await;
    let server = TestServer::start(FakeGenerator::default()).await;
    let limits = short(3);
    let marker = format!("fork-bomb-{}-{}", std::process::id(), line!());
    let hostile = {
        let sandbox = sandbox.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let bomb_args = [marker.as_str()];
            tokio::join!(
                run_python(&sandbox, FORK_BOMB, &bomb_args, &limits),
                run_python(&sandbox, "while True:\n    pass\n", &[], &limits),
            )
        })
    };
    let http = client();
    let mut latencies = Vec::new();
    let until = Instant::now() + limits.wall;
    while Instant::now() < until {
        let sent = Instant::now();
        let response = http.get(format!("{}/health", server.url)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        latencies.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (bomb, busy) = hostile.await.unwrap();
    assert!(bomb.timed_out && busy.timed_out, "{bomb:?} {busy:?}");
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    assert!(latencies.len() > 50, "only {} requests answered", latencies.len());
    assert!(p99 < Duration::from_millis(100), "p99 of /health {p99:?} over {} requests", latencies.len());
}
