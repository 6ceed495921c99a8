//! The real shapes against the numbers their model cards and published GGUFs give, the header
//! as candle reads it, and a tiny file read back whole.

use std::io::Cursor;

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::Content;

use super::*;

fn tensor<'a>(plan: &'a SynthPlan, name: &str) -> &'a TensorPlan {
    plan.tensors.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no {name}"))
}

fn metadata_u32(plan: &SynthPlan, key: &str) -> u32 {
    plan.metadata.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key}")).1.to_u32().unwrap()
}

#[test]
fn llama_8b_is_llama_3_1_8b_in_llama_cpps_q4_k_m_mix() {
    let plan = plan(SynthArch::Llama, SynthShape::B8, SynthQuant::Q4KM).unwrap();
    // Meta's model card: 8,030,261,248 weights; llama.cpp's file: 292 tensors with rope_freqs.
    assert_eq!(plan.parameters(), 8_030_261_248);
    assert_eq!(plan.tensors.len(), 292);
    let shape = |name: &str| (tensor(&plan, name).dims.clone(), tensor(&plan, name).dtype);
    assert_eq!(shape("token_embd.weight"), (vec![128_256, 4096], GgmlDType::Q4K));
    assert_eq!(shape("output.weight"), (vec![128_256, 4096], GgmlDType::Q6K));
    assert_eq!(shape("blk.0.attn_q.weight"), (vec![4096, 4096], GgmlDType::Q4K));
    assert_eq!(shape("blk.0.attn_k.weight"), (vec![1024, 4096], GgmlDType::Q4K));
    assert_eq!(shape("blk.0.attn_v.weight"), (vec![1024, 4096], GgmlDType::Q6K));
    assert_eq!(shape("blk.4.attn_v.weight"), (vec![1024, 4096], GgmlDType::Q4K));
    assert_eq!(shape("blk.6.ffn_down.weight"), (vec![4096, 14_336], GgmlDType::Q6K));
    assert_eq!(shape("blk.7.ffn_down.weight"), (vec![4096, 14_336], GgmlDType::Q4K));
    assert_eq!(shape("blk.31.ffn_gate.weight"), (vec![14_336, 4096], GgmlDType::Q4K));
    assert_eq!(shape("blk.31.attn_norm.weight"), (vec![4096], GgmlDType::F32));
    // Half the layers get Q6_K in attn_v and ffn_down: 0-3, 28-31 and every third between.
    let promoted: Vec<usize> =
        (0..32).filter(|i| tensor(&plan, &format!("blk.{i}.attn_v.weight")).dtype == GgmlDType::Q6K).collect();
    assert_eq!(promoted, [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
    // The published Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf is 4.92 GB, its vocabulary included.
    let bytes = plan.tensor_bytes() as f64;
    assert!((bytes / 4.92e9 - 1.0).abs() < 0.01, "{bytes} bytes of tensors");
    for (key, value) in [
        ("llama.block_count", 32),
        ("llama.embedding_length", 4096),
        ("llama.feed_forward_length", 14_336),
        ("llama.attention.head_count", 32),
        ("llama.attention.head_count_kv", 8),
        ("llama.vocab_size", 128_256),
        ("general.file_type", 15),
    ] {
        assert_eq!(metadata_u32(&plan, key), value, "{key}");
    }
    let factors = match &tensor(&plan, "rope_freqs.weight").fill {
        Fill::Values(v) => v.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!((factors.len(), factors[0], factors[63]), (64, 1.0, 8.0));
}

#[test]
fn qwen2_shapes_are_qwen2_5s() {
    // The weights Qwen's model cards count, and llama.cpp's 339 tensors for the 7B.
    let cases = [
        (SynthShape::B8, 7_615_616_512u64, 28, 3584, 18_944, 4),
        (SynthShape::B14, 14_770_033_664, 48, 5120, 13_824, 8),
        (SynthShape::B32, 32_763_876_352, 64, 5120, 27_648, 8),
    ];
    for (shape, parameters, layers, hidden, ffn, kv_heads) in cases {
        let plan = plan(SynthArch::Qwen2, shape, SynthQuant::Q8_0).unwrap();
        assert_eq!(plan.parameters(), parameters, "{shape:?}");
        assert_eq!(plan.tensors.len(), 12 * layers + 3, "{shape:?}");
        assert_eq!(tensor(&plan, "blk.0.attn_k.weight").dims, [kv_heads * 128, hidden], "{shape:?}");
        assert_eq!(tensor(&plan, "blk.0.attn_k.bias").dims, [kv_heads * 128], "{shape:?}");
        assert_eq!(tensor(&plan, "blk.0.ffn_up.weight").dims, [ffn, hidden], "{shape:?}");
        assert_eq!(tensor(&plan, "output.weight").dims, [152_064, hidden], "{shape:?}");
        assert!(plan.tensors.iter().all(|t| matches!(t.dtype, GgmlDType::Q8_0 | GgmlDType::F32)));
        assert_eq!(metadata_u32(&plan, "qwen2.block_count"), layers as u32);
        assert_eq!(metadata_u32(&plan, "tokenizer.ggml.eos_token_id"), 256 + 2, "<|im_end|>");
    }
    assert!(matches!(
        plan(SynthArch::Qwen3, SynthShape::B8, SynthQuant::Q4KM),
        Err(SynthError::NoSuchShape { arch: "qwen3", shape: "8b" })
    ));
}

#[test]
fn the_header_reads_back_as_planned() {
    let plan = plan(SynthArch::Llama, SynthShape::B8, SynthQuant::Q4KM).unwrap();
    let header = encode_header(&plan);
    assert_eq!(header.len() % 32, 0);
    let content = Content::read(&mut Cursor::new(&header)).unwrap();
    assert_eq!(content.tensor_data_offset, header.len() as u64);
    assert_eq!(content.tensor_infos.len(), plan.tensors.len());
    let mut end = 0;
    for planned in &plan.tensors {
        let info = &content.tensor_infos[&planned.name];
        assert_eq!((info.shape.dims(), info.ggml_dtype), (planned.dims.as_slice(), planned.dtype), "{}", planned.name);
        assert_eq!(info.offset, end, "{} follows the one before", planned.name);
        end = (info.offset as usize + planned.bytes()).next_multiple_of(32) as u64;
    }
    let md = &content.metadata;
    assert_eq!(md["general.architecture"].to_string().unwrap(), "llama");
    assert_eq!(md["llama.rope.freq_base"].to_f32().unwrap(), 500_000.0);
    assert_eq!(md["tokenizer.ggml.tokens"].to_vec().unwrap().len(), 128_256);
}

#[test]
fn a_tiny_file_reads_back_whole_and_finite() {
    let dir = tempfile::tempdir().unwrap();
    for quant in [SynthQuant::Q4KM, SynthQuant::Q8_0, SynthQuant::F32] {
        let plan = plan(SynthArch::Qwen2, SynthShape::Tiny, quant).unwrap();
        let path = dir.path().join(format!("tiny-{}.gguf", quant.name()));
        let report = write(&plan, &path).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(report.bytes, size);
        assert!(!path.with_extension("gguf.partial").exists());
        let mut reader = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let content = Content::read(&mut reader).unwrap();
        for planned in &plan.tensors {
            let values = content
                .tensor(&mut reader, &planned.name, &candle_core::Device::Cpu)
                .and_then(|t| t.dequantize(&candle_core::Device::Cpu)?.flatten_all()?.to_vec1::<f32>())
                .unwrap();
            assert_eq!(values.len(), planned.elements(), "{}", planned.name);
            assert!(values.iter().all(|v| v.is_finite()), "{} {quant:?}", planned.name);
            if planned.fill == Fill::Ones {
                assert!(values.iter().all(|&v| v == 1.0), "{}", planned.name);
            } else {
                // Random rows: not constant, and about the planned scale.
                let rms = (values.iter().map(|v| v * v).sum::<f32>() / values.len() as f32).sqrt();
                let expected = 1.0 / (planned.columns() as f32).sqrt();
                assert!((rms / expected - 1.0).abs() < 0.2, "{} {quant:?}: rms {rms}", planned.name);
            }
        }
    }
}
