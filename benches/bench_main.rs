//! Criterion benches, one module per area: `cargo bench` (add `-- NAME` to filter).
use criterion::criterion_main;

mod engine;
mod request_path;
mod tokenizer;

criterion_main!(request_path::benches, tokenizer::benches, engine::benches);
