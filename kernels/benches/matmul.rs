//! The K-quant matmuls of a Qwen2.5-1.5B layer (1536 × 1536 and the 8960 × 1536 down
//! projection's shape turned round, 1536 × 8960): a decode step of one sequence, a batched
//! decode step of four, and a prefill pass of 64 tokens, at every kernel tier this CPU runs,
//! beside candle's own `QMatMul` (its repacked tiles where it has them). Random weights: speed
//! does not depend on their values.
//!
//! `cargo bench -p bidder-kernels`; `MISTRALRS_FORCE_AVX2=1` holds candle to its AVX2 tiles,
//! the fair neighbour of our `avx2` rows.
use std::hint::black_box;

use bidder_kernels::{Tier, cpu_matrix};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod common;
use common::values;

fn matmuls(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    group.sample_size(20);
    for dtype in [GgmlDType::Q4K, GgmlDType::Q6K, GgmlDType::Q8_0] {
        for (rows, cols) in [(1536, 1536), (1536, 8960)] {
            let w = Tensor::from_vec(values(rows * cols, 1), (rows, cols), &Device::Cpu).unwrap();
            let q = QTensor::quantize(&w, dtype).unwrap();
            let bytes = q.data().unwrap().into_owned();
            let candle = QMatMul::from_qtensor(q).unwrap();
            for m in [1, 4, 64] {
                let x = values(m * cols, 2);
                let xt = Tensor::from_vec(x.clone(), (1, m, cols), &Device::Cpu).unwrap();
                let mut out = vec![0f32; m * rows];
                group.throughput(Throughput::Elements((m * rows * cols) as u64));
                let shape = format!("{dtype:?}_{rows}x{cols}_m{m}");
                for tier in Tier::supported().filter(|tier| *tier > Tier::Generic) {
                    let matrix = cpu_matrix(dtype, &bytes, rows, cols, tier).unwrap().unwrap();
                    group.bench_function(format!("{shape}/ours_{tier}"), |b| {
                        b.iter(|| matrix.matmul(black_box(&x), &mut out).unwrap())
                    });
                }
                group.bench_function(format!("{shape}/candle"), |b| b.iter(|| candle.forward(black_box(&xt)).unwrap()));
            }
        }
    }
    group.finish();
}

criterion_group!(benches, matmuls);
criterion_main!(benches);
