//! Tokenizing a prompt-sized text with the tokenizer rebuilt from the default model's GGUF.
use std::hint::black_box;
use std::path::Path;

use bidder::engine::load_gguf_tokenizer;
use criterion::{Criterion, Throughput, criterion_group};

fn encode(c: &mut Criterion) {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join(bidder::config::DEFAULT_MODEL_PATH);
    let tokenizer = load_gguf_tokenizer(&model).expect("run scripts/fetch-models.sh first");
    let text = include_str!("../tests/fixtures/briefs/code-review-python.json").repeat(4);
    let mut group = c.benchmark_group("tokenizer");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("encode_smollm2", |b| b.iter(|| tokenizer.encode(black_box(text.as_str()), false).unwrap()));
    group.finish();
}

criterion_group!(benches, encode);
