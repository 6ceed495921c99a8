//! The tokenizer, rebuilt from a GGUF's own metadata so no `tokenizer.json` is needed.
//!
//! candle's `Tokenizer::from_gguf` adds a prefix space and gets SmolLM2 wrong; llama.cpp's ids
//! are the reference (`tests/fixtures/tokenizer/`). The recipe: byte-level BPE from
//! `tokenizer.ggml.tokens` + `tokenizer.ggml.merges`; the pre-tokenizer chosen by
//! `tokenizer.ggml.pre`; a ByteLevel decoder; tokens whose type is not "normal" become special
//! tokens, matched whole in the input text the way llama.cpp does with special parsing on.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

use super::EngineError;

/// GGUF token types (llama.cpp's `llama_token_type`): 1 is a normal token; 2 unknown, 3 control,
/// 4 user-defined and 5 unused are matched whole and never split.
const NORMAL_TOKEN_TYPE: i32 = 1;

/// Qwen2's split pattern (from its `tokenizer.json`), applied before the byte-level mapping.
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Build the tokenizer described by a GGUF's metadata.
pub fn from_gguf_metadata(metadata: &HashMap<String, Value>) -> Result<Tokenizer, EngineError> {
    let model_kind = string(metadata, "tokenizer.ggml.model")?;
    if model_kind != "gpt2" {
        return Err(EngineError::Tokenizer(format!(
            "tokenizer.ggml.model = {model_kind:?} is not supported yet (only byte-level BPE, \"gpt2\")"
        )));
    }
    let tokens: Vec<String> = array(metadata, "tokenizer.ggml.tokens")?
        .iter()
        .map(|v| v.to_string().cloned().map_err(|e| EngineError::Tokenizer(e.to_string())))
        .collect::<Result<_, _>>()?;
    let merges: Vec<(String, String)> = array(metadata, "tokenizer.ggml.merges")?
        .iter()
        .map(|v| {
            let merge = v.to_string().map_err(|e| EngineError::Tokenizer(e.to_string()))?;
            let (a, b) =
                merge.split_once(' ').ok_or_else(|| EngineError::Tokenizer(format!("malformed merge {merge:?}")))?;
            Ok((a.to_string(), b.to_string()))
        })
        .collect::<Result<_, EngineError>>()?;
    let token_types: Vec<i32> = match metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?
            .iter()
            .map(|t| t.to_i32().map_err(|e| EngineError::Tokenizer(e.to_string())))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };

    let vocab: Vocab = tokens.iter().enumerate().map(|(id, tok)| (tok.clone(), id as u32)).collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| EngineError::Tokenizer(format!("building BPE: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);

    let pre = metadata.get("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).map(String::as_str);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer(pre)?));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

    let specials: Vec<AddedToken> = token_types
        .iter()
        .enumerate()
        .filter(|(_, ty)| **ty != NORMAL_TOKEN_TYPE)
        .filter_map(|(id, _)| tokens.get(id))
        .map(|tok| AddedToken::from(tok.clone(), true))
        .collect();
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| EngineError::Tokenizer(format!("registering special tokens: {e}")))?;
    Ok(tokenizer)
}

fn pre_tokenizer(pre: Option<&str>) -> Result<PreTokenizerWrapper, EngineError> {
    let byte_level = |use_regex| ByteLevel::new(false, true, use_regex).into();
    let steps: Vec<PreTokenizerWrapper> = match pre {
        // SmolLM's tokenizer.json: every digit on its own, then GPT-2's byte-level split.
        Some("smollm") => vec![Digits::new(true).into(), byte_level(true)],
        Some("qwen2") => {
            let split = Split::new(SplitPattern::Regex(QWEN2_SPLIT.into()), SplitDelimiterBehavior::Isolated, false)
                .map_err(|e| EngineError::Tokenizer(format!("qwen2 split pattern: {e}")))?;
            vec![split.into(), byte_level(false)]
        }
        // GPT-2's own pattern is the byte-level default; other families arrive with the engine
        // issue's catalogue.
        Some("gpt2") | Some("default") | None => vec![byte_level(true)],
        Some(other) => {
            tracing::warn!(pre = other, "unknown tokenizer.ggml.pre; falling back to GPT-2 byte-level splitting");
            vec![byte_level(true)]
        }
    };
    Ok(Sequence::new(steps).into())
}

fn string<'a>(metadata: &'a HashMap<String, Value>, key: &str) -> Result<&'a String, EngineError> {
    metadata
        .get(key)
        .ok_or_else(|| EngineError::Tokenizer(format!("GGUF metadata lacks {key}")))?
        .to_string()
        .map_err(|e| EngineError::Tokenizer(format!("{key}: {e}")))
}

fn array<'a>(metadata: &'a HashMap<String, Value>, key: &str) -> Result<&'a Vec<Value>, EngineError> {
    metadata
        .get(key)
        .ok_or_else(|| EngineError::Tokenizer(format!("GGUF metadata lacks {key}")))?
        .to_vec()
        .map_err(|e| EngineError::Tokenizer(format!("{key}: {e}")))
}
