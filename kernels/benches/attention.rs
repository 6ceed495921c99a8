//! One decode step's attention ([`bidder_kernels::attention::decode_step`]) over a cache of 332
//! positions (the benchmark prompt's length) and of 1024, for Qwen2.5-1.5B's heads (12 query
//! heads sharing 2 key/value heads of 128) and SmolLM2-135M's (9 sharing 3 of 64), on two
//! threads as the engine runs it (`THREADS=1` for one). A batch of four sequences runs this four
//! times a layer.
use std::hint::black_box;

use bidder_kernels::attention::{Heads, decode_step};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use half::f16;

mod common;
use common::values;

fn attention(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(std::env::var("THREADS").map_or(2, |t| t.parse().unwrap()))
        .build()
        .unwrap();
    let mut group = c.benchmark_group("attention");
    group.sample_size(50);
    for (name, shape) in [
        ("qwen2.5-1.5b", Heads { heads: 12, kv_heads: 2, head_dim: 128 }),
        ("smollm2-135m", Heads { heads: 9, kv_heads: 3, head_dim: 64 }),
    ] {
        for len in [332, 1024] {
            let capacity = 2048;
            let queries = values(shape.heads * shape.head_dim, 1);
            let keys: Vec<f16> =
                values(shape.kv_heads * capacity * shape.head_dim, 2).into_iter().map(f16::from_f32).collect();
            let cache_values: Vec<f16> =
                values(shape.kv_heads * capacity * shape.head_dim, 3).into_iter().map(f16::from_f32).collect();
            group.throughput(Throughput::Elements(len as u64));
            group.bench_function(format!("{name}/{len}"), |b| {
                pool.install(|| b.iter(|| decode_step(shape, black_box(&queries), &keys, &cache_values, capacity, len)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, attention);
criterion_main!(benches);
