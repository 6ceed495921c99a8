//! The work done on every `/execute` before any inference: signature verification over the raw
//! body and lenient brief parsing.
use std::hint::black_box;

use bidder::config::Secret;
use bidder::http::auth::{sign, verify_signature};
use bidder::protocol::parse_brief;
use criterion::{Criterion, Throughput, criterion_group};

const BRIEF: &[u8] = include_bytes!("../tests/fixtures/briefs/blog-post-sustainable-investing.json");

fn signature_verification(c: &mut Criterion) {
    let secrets = [Secret::new("whsec_pending"), Secret::new("whsec_current")];
    let signature = hex::decode(sign("whsec_current", BRIEF)).unwrap();
    let mut group = c.benchmark_group("auth");
    group.throughput(Throughput::Bytes(BRIEF.len() as u64));
    group.bench_function("verify_signature_two_secrets", |b| {
        b.iter(|| verify_signature(black_box(&secrets), black_box(BRIEF), black_box(&signature)).unwrap())
    });
    group.finish();
}

fn brief_parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Bytes(BRIEF.len() as u64));
    group.bench_function("parse_brief", |b| b.iter(|| parse_brief(black_box(BRIEF)).unwrap()));
    group.finish();
}

criterion_group!(benches, signature_verification, brief_parsing);
