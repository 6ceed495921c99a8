//! The `request_path` fuzz target's checks (`tests/request_path/mod.rs`) under `cargo test`:
//! on every fixture brief as the platform would send it and as an attacker might, on a few
//! hostile bodies, and on every input the fuzzer crashed on (`tests/fixtures/fuzz/`, one
//! `.json` body each, sent signed). The fuzzer itself is in `fuzz/` (see `fuzz/README.md`).

mod request_path;

use std::path::{Path, PathBuf};

use bidder::http::auth::sign;
use request_path::{KEY, NOW_SECS, RawRequest, SECRETS, check};

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// `body` sent the right way, every accepted way, and every wrong way we can name.
fn every_way(body: &[u8]) -> Vec<RawRequest> {
    let right = || RawRequest::signed(body, SECRETS[0]);
    let hex = sign(SECRETS[1], body);
    let now = NOW_SECS.to_string();
    vec![
        right(),
        RawRequest::signed(body, SECRETS[1]),
        RawRequest { signature: Some(hex.to_uppercase().into()), ..right() },
        RawRequest { signature: Some(format!(" sha256={hex}\t").into()), ..right() },
        RawRequest { signature: Some(format!("Sha256={hex}").into()), ..right() },
        RawRequest { signature: Some(sign("not-our-secret", body).into()), ..right() },
        RawRequest { signature: Some(hex[..62].into()), ..right() },
        RawRequest { signature: Some("zz".into()), ..right() },
        RawRequest { signature: Some(b"\xff\xfe".to_vec()), ..right() },
        RawRequest { signature: None, ..right() },
        RawRequest { key: Some(format!("{KEY} ").into()), ..right() },
        RawRequest { key: Some(KEY[..KEY.len() - 1].into()), ..right() },
        RawRequest { key: Some(b"\x80ait".to_vec()), ..right() },
        RawRequest { key: None, ..right() },
        RawRequest { timestamp: Some((NOW_SECS + 300).to_string().into()), ..right() },
        RawRequest { timestamp: Some((NOW_SECS - 301).to_string().into()), ..right() },
        RawRequest { timestamp: Some(format!(" +{now} ").into()), ..right() },
        RawRequest { timestamp: Some(format!("{now}.0").into()), ..right() },
        RawRequest { timestamp: Some(i64::MIN.to_string().into()), ..right() },
        RawRequest { timestamp: Some("99999999999999999999".into()), ..right() },
        RawRequest { timestamp: None, ..right() },
        RawRequest { task_id: Some("some-other-task".into()), ..right() },
        RawRequest { task_id: Some(b"\xc3\x28\x01".to_vec()), ..right() },
    ]
}

#[test]
fn fixture_briefs_pass_the_request_path_checks() {
    let briefs = files("tests/fixtures/briefs");
    assert!(briefs.len() >= 12, "expected the shared fixture briefs");
    for path in briefs {
        let body = std::fs::read(&path).unwrap();
        let mut value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        value["mode"] = "final".into();
        let final_body = value.to_string().into_bytes();
        for request in every_way(&body).into_iter().chain(every_way(&final_body)) {
            check(&request);
        }
    }
}

#[test]
fn hostile_bodies_pass_the_request_path_checks() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\xff\xfe\x00".to_vec(),
        b"null".to_vec(),
        deep.into_bytes(),
        br#"{"task_id":" ","mode":"prototype","title":"x"}"#.to_vec(),
        br#"{"task_id":"t\u0000","mode":"prototype","title":"x"}"#.to_vec(),
        br#"{"task_id":"t","mode":"final","title":"x","budget_usd":"$1e308","requirements":{"slides":1e300}}"#.to_vec(),
        br#"{"task_id":"t","mode":"final","title":"x","execution_timeout_seconds":"18446744073709551615"}"#.to_vec(),
        br#"{"task_id":"t","phase":"bid","task_spec":{"task_id":"inner","title":"Logo","task_type":"logo"}}"#.to_vec(),
        br#"{"task_id":"t","mode":"final","task_type":"data","description":"a,b\n\"x\",1\ny,2,3\nz,\"4"}"#.to_vec(),
        b"quarter,region,revenue\nQ1,North,\"1,000\"\nQ2,North,2000\nQ2,,\n".to_vec(),
    ];
    for body in bodies {
        for request in every_way(&body) {
            check(&request);
        }
    }
}

#[test]
fn inputs_the_fuzzer_crashed_on_pass_the_request_path_checks() {
    for path in files("tests/fixtures/fuzz") {
        let body = std::fs::read(&path).unwrap();
        for request in every_way(&body) {
            check(&request);
        }
    }
}
