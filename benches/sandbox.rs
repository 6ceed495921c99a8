//! What the sandbox costs per run: `Sandbox::run` of `/bin/true` and of `python3 -c pass`
//! beside the same commands spawned directly, so the overhead reads as a difference.
//! `cargo bench --bench sandbox`; needs bubblewrap and python3.
use std::process::{Command, Stdio};

use bidder::sandbox::{Availability, CodeExec, Limits};
use criterion::{Criterion, criterion_group, criterion_main};

fn spawn(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let sandbox = match runtime.block_on(Availability::probe(CodeExec::Required, None)) {
        Ok(Availability::Ready(sandbox)) => sandbox,
        other => panic!("the sandbox does not work here (install bubblewrap): {other:?}"),
    };
    let python = sandbox.interpreter("python3").expect("python3 in /usr/bin");
    let limits = Limits::default();
    let mut group = c.benchmark_group("sandbox");
    group.sample_size(20);
    for (name, argv) in [("true", vec!["/bin/true"]), ("python3_pass", vec![python.as_str(), "-c", "pass"])] {
        group.bench_function(format!("direct_{name}"), |b| {
            b.iter(|| {
                let status = Command::new(argv[0])
                    .args(&argv[1..])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .output()
                    .unwrap()
                    .status;
                assert!(status.success());
            })
        });
        group.bench_function(format!("sandboxed_{name}"), |b| {
            b.iter(|| {
                let outcome = runtime.block_on(sandbox.run(&[], &argv, &limits)).unwrap();
                assert!(outcome.succeeded(), "{outcome:?}");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, spawn);
criterion_main!(benches);
