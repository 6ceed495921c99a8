//! The tokenizer, rebuilt from a GGUF's own metadata so no `tokenizer.json` is needed (one next
//! to the GGUF still wins, see [`for_gguf`]).
//!
//! llama.cpp's ids are the reference (`tests/fixtures/tokenizer/`); candle's
//! `Tokenizer::from_gguf` adds a prefix space and gets SmolLM2 wrong. Two vocabulary kinds:
//!
//! * `tokenizer.ggml.model = "gpt2"`: byte-level BPE from `tokenizer.ggml.tokens` +
//!   `tokenizer.ggml.merges`, split first by the regexes llama.cpp uses for
//!   `tokenizer.ggml.pre` ([`PRE_TOKENIZERS`]), a ByteLevel decoder.
//! * `tokenizer.ggml.model = "llama"` (SentencePiece: Llama 2, Mistral, Gemma, Gemma 3): tokens
//!   and `tokenizer.ggml.scores`, no merges. llama.cpp escapes spaces as `▁`, prepends one when
//!   `tokenizer.ggml.add_space_prefix` (default true; Gemma sets false), then repeatedly merges
//!   the adjacent pair whose concatenation is the best-scoring vocabulary token, falling back to
//!   `<0xXX>` byte tokens. The same thing as a `tokenizers` BPE model: every split of a token into
//!   two vocabulary tokens is a merge ranked by that token's score (what Hugging Face's
//!   SentencePiece converter does), with byte fallback.
//!
//! In both, control and unknown tokens (and the end-of-turn names llama.cpp forces to control)
//! are special tokens matched whole, as llama.cpp does with special parsing on; user-defined
//! tokens are matched whole too but are ordinary text when decoding.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::prepend::Prepend;
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::utils::Sequence as NormalizerSequence;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer,
};

use super::EngineError;

/// GGUF token types (llama.cpp's `llama_token_type`).
const UNKNOWN_TOKEN_TYPE: i32 = 2;
const CONTROL_TOKEN_TYPE: i32 = 3;
const USER_DEFINED_TOKEN_TYPE: i32 = 4;

/// Tokens llama.cpp treats as control (end of generation) whatever type the file gives them.
const CONTROL_LOOKING_TOKENS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
    "[e~[",
];

/// SentencePiece's escaped space.
const SPM_SPACE: &str = "\u{2581}";

/// llama.cpp's contraction alternatives, spelt without `(?i:…)`: Unicode case folding would also
/// match `ſ` (U+017F) or the Kelvin sign, which llama.cpp does not.
macro_rules! contractions {
    () => {
        r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
    };
}

/// GPT-2's split.
const GPT2_SPLIT: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's split: Qwen 2's with digits in groups of up to three.
const LLAMA3_SPLIT: &str = concat!(
    contractions!(),
    r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
const QWEN2_SPLIT: &str =
    concat!(contractions!(), r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+");
const QWEN35_SPLIT: &str = concat!(
    contractions!(),
    r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
/// GPT-4o's split as llama.cpp rewrites it: "a letter that is not a-z" stands for the upper-case
/// classes (so lower-case non-ASCII letters count as upper case, as in llama.cpp).
const GPT4O_SPLIT: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+",
    contractions!(),
    r"?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*",
    contractions!(),
    r"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
const TEKKEN_SPLIT: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+",
    r"|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*",
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);
const DEEPSEEK_LLM_LETTERS: &str = concat!(
    r"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}",
    r"\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}",
    r"\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}",
    r"\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}",
    r"\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}",
    r"\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}",
    r"\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}",
    r"\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}",
    r"\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}",
    r"\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}",
    r"\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}",
    r"\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}",
    r"\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+"
);
/// CJK ideographs and Hangul (DeepSeek LLM and Coder).
const DEEPSEEK_CJK: &str = r"[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+";
/// CJK ideographs and kana (DeepSeek V3).
const DEEPSEEK3_CJK: &str = r"[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+";
const DEEPSEEK3_PUNCT_WORDS: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##;

/// How llama.cpp splits text before byte-level BPE, for a family of `tokenizer.ggml.pre` names:
/// each regex in turn splits every piece further, keeping matches and the text between them.
struct PreTokenizer {
    names: &'static [&'static str],
    splits: &'static [&'static str],
    /// A piece that is itself a vocabulary token is not merged (llama.cpp's `ignore_merges`).
    ignore_merges: bool,
}

/// The catalogue, transcribed from llama.cpp's `llm_tokenizer_bpe` (llama-vocab.cpp).
const PRE_TOKENIZERS: &[PreTokenizer] = &[
    PreTokenizer {
        names: &["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"],
        splits: &[LLAMA3_SPLIT],
        ignore_merges: true,
    },
    PreTokenizer { names: &["dbrx", "smaug-bpe", "chatglm-bpe"], splits: &[LLAMA3_SPLIT], ignore_merges: false },
    PreTokenizer { names: &["glm4"], splits: &[LLAMA3_SPLIT], ignore_merges: true },
    PreTokenizer {
        names: &["qwen2", "deepseek-r1-qwen", "stablelm2", "hunyuan", "megrez"],
        splits: &[QWEN2_SPLIT],
        ignore_merges: false,
    },
    PreTokenizer { names: &["qwen35"], splits: &[QWEN35_SPLIT], ignore_merges: false },
    PreTokenizer {
        names: &["starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"],
        splits: &[r"\p{N}", GPT2_SPLIT],
        ignore_merges: false,
    },
    PreTokenizer {
        names: &["gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jais", "trillion", "granite-docling", "exaone4", "mellum"],
        splits: &[GPT2_SPLIT],
        ignore_merges: false,
    },
    PreTokenizer {
        names: &["falcon"],
        splits: &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2_SPLIT, "[0-9][0-9][0-9]"],
        ignore_merges: false,
    },
    PreTokenizer {
        names: &["deepseek-llm"],
        splits: &[
            r"[\r\n]",
            DEEPSEEK_LLM_LETTERS,
            r"\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+",
            r"\s+\z",
            DEEPSEEK_CJK,
            r"\p{N}+",
        ],
        ignore_merges: false,
    },
    PreTokenizer {
        names: &["deepseek-coder"],
        splits: &[r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", DEEPSEEK_CJK, r"\p{N}"],
        ignore_merges: false,
    },
    PreTokenizer {
        names: &["deepseek-v3"],
        splits: &[r"\p{N}{1,3}", DEEPSEEK3_CJK, DEEPSEEK3_PUNCT_WORDS],
        ignore_merges: false,
    },
    PreTokenizer { names: &["gpt-4o", "llama4", "minimax-m2"], splits: &[GPT4O_SPLIT], ignore_merges: false },
    PreTokenizer { names: &["tekken"], splits: &[TEKKEN_SPLIT], ignore_merges: true },
    // llama.cpp's default when a file names none (or "default").
    PreTokenizer {
        names: &["default"],
        splits: &[r"[\p{P}\$\+<=>\^~\|]+", GPT2_SPLIT, r"\p{N}+", "[0-9][0-9][0-9]"],
        ignore_merges: false,
    },
];

/// `tokenizer.ggml.pre` values llama.cpp gives a BOS by default (when the file does not say).
const ADDS_BOS_BY_DEFAULT: &[&str] =
    &["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "tekken"];

/// The tokenizer for the GGUF at `path`: the model's own Hugging Face tokenizer when one lies
/// beside it — `<stem>.tokenizer.json`, or a plain `tokenizer.json` when the GGUF is the only one
/// in its folder (a hub snapshot; in a shared `models/` folder a plain `tokenizer.json` could
/// belong to any of them, so it is ignored there) — otherwise built from `metadata`.
pub fn for_gguf(path: &Path, metadata: &HashMap<String, Value>) -> Result<Tokenizer, EngineError> {
    let Some(json) = tokenizer_json_beside(path) else {
        tracing::info!(model = %path.display(), source = "GGUF metadata", "tokenizer");
        return from_gguf_metadata(metadata);
    };
    tracing::info!(model = %path.display(), source = %json.display(), "tokenizer");
    let tokenizer = Tokenizer::from_file(&json)
        .map_err(|e| EngineError::Tokenizer(format!("{} is not a usable tokenizer.json: {e}", json.display())))?;
    let gguf_tokens = metadata.get("tokenizer.ggml.tokens").and_then(|v| v.to_vec().ok()).map(Vec::len);
    if let Some(n) = gguf_tokens.filter(|&n| n != tokenizer.get_vocab_size(true)) {
        tracing::warn!(
            file = %json.display(),
            tokenizer_json = tokenizer.get_vocab_size(true),
            gguf = n,
            "tokenizer.json and the GGUF disagree on the vocabulary size; is it the right model's?"
        );
    }
    Ok(tokenizer)
}

fn tokenizer_json_beside(path: &Path) -> Option<PathBuf> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or_else(|| Path::new("."));
    let stem = path.file_stem()?.to_string_lossy();
    let own = dir.join(format!("{stem}.tokenizer.json"));
    if own.is_file() {
        return Some(own);
    }
    let shared = dir.join("tokenizer.json");
    if !shared.is_file() {
        return None;
    }
    let ggufs = std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "gguf")).count()
        })
        .unwrap_or(0);
    if ggufs == 1 {
        Some(shared)
    } else {
        tracing::warn!(
            file = %shared.display(),
            "ignoring tokenizer.json: its folder holds several GGUFs; name it <model>.tokenizer.json to use it"
        );
        None
    }
}

/// Whether prompts start with the BOS token: `tokenizer.ggml.add_bos_token`, else llama.cpp's
/// default for the vocabulary (SentencePiece and the Llama 3 family add one).
pub fn adds_bos(metadata: &HashMap<String, Value>) -> bool {
    if let Some(add) = metadata.get("tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok()) {
        return add;
    }
    let text = |key: &str| metadata.get(key).and_then(|v| v.to_string().ok()).map(String::as_str);
    match text("tokenizer.ggml.model") {
        Some("llama") => true,
        Some("gpt2") => text("tokenizer.ggml.pre").is_some_and(|pre| ADDS_BOS_BY_DEFAULT.contains(&pre)),
        _ => false,
    }
}

/// Build the tokenizer described by a GGUF's metadata.
pub fn from_gguf_metadata(metadata: &HashMap<String, Value>) -> Result<Tokenizer, EngineError> {
    let model_kind = string(metadata, "tokenizer.ggml.model")?;
    let tokens: Vec<String> = array(metadata, "tokenizer.ggml.tokens")?
        .iter()
        .map(|v| v.to_string().cloned().map_err(|e| EngineError::Tokenizer(e.to_string())))
        .collect::<Result<_, _>>()?;
    let token_types: Vec<i32> = match metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?
            .iter()
            .map(|t| t.to_i32().map_err(|e| EngineError::Tokenizer(e.to_string())))
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let mut tokenizer = match model_kind.as_str() {
        "gpt2" => byte_level_bpe(metadata, &tokens)?,
        "llama" => sentencepiece(metadata, &tokens, &token_types)?,
        other => {
            return Err(EngineError::Tokenizer(format!(
                "tokenizer.ggml.model = {other:?} is not supported yet (byte-level BPE \"gpt2\" and \
                 SentencePiece \"llama\" are)"
            )));
        }
    };
    let name = metadata.get("general.name").and_then(|v| v.to_string().ok()).map(|n| n.to_lowercase());
    let phi3 = name.is_some_and(|n| n.contains("phi-3") || n.contains("phi3"));
    add_whole_tokens(&mut tokenizer, &tokens, &token_types, phi3)?;
    Ok(tokenizer)
}

/// Control and unknown tokens become special tokens, user-defined ones plain added tokens: both
/// are matched whole in the raw text before the model sees it, like llama.cpp's
/// `tokenizer_st_partition`; unused and byte tokens are not. For Phi-3 (by `general.name`, as
/// llama.cpp decides it) whitespace after those tokens is dropped, except after `<s>`, `<unk>` and
/// `<|endoftext|>`.
fn add_whole_tokens(
    tokenizer: &mut Tokenizer,
    tokens: &[String],
    token_types: &[i32],
    phi3: bool,
) -> Result<(), EngineError> {
    let rstrip = |token: &str| phi3 && !matches!(token, "<s>" | "<unk>" | "<|endoftext|>");
    let mut special = Vec::new();
    let mut user_defined = Vec::new();
    for (id, token) in tokens.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
        let whole = |special| AddedToken::from(token.clone(), special).normalized(false).rstrip(rstrip(token));
        match token_types.get(id).copied() {
            Some(UNKNOWN_TOKEN_TYPE | CONTROL_TOKEN_TYPE) => special.push(whole(true)),
            _ if CONTROL_LOOKING_TOKENS.contains(&token.as_str()) => special.push(whole(true)),
            Some(USER_DEFINED_TOKEN_TYPE) => user_defined.push(whole(false)),
            _ => {}
        }
    }
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| EngineError::Tokenizer(format!("registering special tokens: {e}")))?;
    tokenizer
        .add_tokens(user_defined)
        .map_err(|e| EngineError::Tokenizer(format!("registering user-defined tokens: {e}")))?;
    Ok(())
}

fn vocab(tokens: &[String]) -> Vocab {
    // Later duplicates win, as in llama.cpp's `token_to_id`.
    tokens.iter().enumerate().map(|(id, tok)| (tok.clone(), id as u32)).collect()
}

fn byte_level_bpe(metadata: &HashMap<String, Value>, tokens: &[String]) -> Result<Tokenizer, EngineError> {
    let merges: Vec<(String, String)> = array(metadata, "tokenizer.ggml.merges")?
        .iter()
        .map(|v| {
            let merge = v.to_string().map_err(|e| EngineError::Tokenizer(e.to_string()))?;
            let (a, b) =
                merge.split_once(' ').ok_or_else(|| EngineError::Tokenizer(format!("malformed merge {merge:?}")))?;
            Ok((a.to_string(), b.to_string()))
        })
        .collect::<Result<_, EngineError>>()?;
    let pre = metadata.get("tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).map(String::as_str);
    let pre = pre_tokenizer(pre);
    let bpe = BPE::builder()
        .vocab_and_merges(vocab(tokens), merges)
        .ignore_merges(pre.ignore_merges)
        .build()
        .map_err(|e| EngineError::Tokenizer(format!("building BPE: {e}")))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(split_then_byte_level(pre)?));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    Ok(tokenizer)
}

fn pre_tokenizer(pre: Option<&str>) -> &'static PreTokenizer {
    let find = |name: &str| PRE_TOKENIZERS.iter().find(|p| p.names.contains(&name));
    let default = find("default").expect("the catalogue has a default");
    match pre {
        None => default,
        Some(name) => find(name).unwrap_or_else(|| {
            tracing::warn!(pre = name, "unknown tokenizer.ggml.pre; falling back to llama.cpp's default splitting");
            default
        }),
    }
}

fn split_then_byte_level(pre: &PreTokenizer) -> Result<PreTokenizerWrapper, EngineError> {
    let mut steps: Vec<PreTokenizerWrapper> = pre
        .splits
        .iter()
        .map(|regex| {
            Split::new(SplitPattern::Regex((*regex).into()), SplitDelimiterBehavior::Isolated, false)
                .map(Into::into)
                .map_err(|e| EngineError::Tokenizer(format!("split pattern {regex:?}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    steps.push(ByteLevel::new(false, true, false).into());
    Ok(Sequence::new(steps).into())
}

/// A SentencePiece vocabulary as a BPE model whose merges are derived from the scores.
fn sentencepiece(
    metadata: &HashMap<String, Value>,
    tokens: &[String],
    token_types: &[i32],
) -> Result<Tokenizer, EngineError> {
    let scores: Vec<f32> = array(metadata, "tokenizer.ggml.scores")?
        .iter()
        .map(|v| v.to_f32().map_err(|e| EngineError::Tokenizer(format!("tokenizer.ggml.scores: {e}"))))
        .collect::<Result<_, _>>()?;
    if scores.len() != tokens.len() {
        return Err(EngineError::Tokenizer(format!(
            "{} tokens but {} scores in tokenizer.ggml.scores",
            tokens.len(),
            scores.len()
        )));
    }
    let vocab = vocab(tokens);
    let mut builder = BPE::builder().vocab_and_merges(vocab.clone(), spm_merges(&vocab, &scores)).byte_fallback(true);
    let unk_id = metadata
        .get("tokenizer.ggml.unknown_token_id")
        .and_then(|v| v.to_u32().ok())
        .or_else(|| token_types.iter().position(|&t| t == UNKNOWN_TOKEN_TYPE).map(|id| id as u32));
    if let Some(unk) = unk_id.and_then(|id| tokens.get(id as usize)) {
        builder = builder.unk_token(unk.clone());
    }
    let bpe = builder.build().map_err(|e| EngineError::Tokenizer(format!("building SentencePiece BPE: {e}")))?;

    let add_space_prefix =
        metadata.get("tokenizer.ggml.add_space_prefix").and_then(|v| v.to_bool().ok()).unwrap_or(true);
    let escape_spaces = |e| EngineError::Tokenizer(format!("space replacement: {e}"));
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if add_space_prefix {
        normalizers.push(Prepend::new(SPM_SPACE.into()).into());
    }
    normalizers.push(Replace::new(" ", SPM_SPACE).map_err(escape_spaces)?.into());
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPM_SPACE, " ").map_err(escape_spaces)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_normalizer(Some(NormalizerSequence::new(normalizers)))
        .map_err(|e| EngineError::Tokenizer(format!("SentencePiece normalizer: {e}")))?;
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tokenizer)
}

/// Every split of a token into two vocabulary tokens is a merge; llama.cpp merges the pair whose
/// result scores highest, so merges are ranked by the result's score. llama.cpp breaks ties by
/// position (leftmost first), which a fixed rank cannot express; ranking the longer left part
/// first reproduces it for the tie that occurs in practice, Llama 2's runs of `▁` that all score
/// -1e9 (leftmost-first grows the leftmost run until no longer run exists).
fn spm_merges(vocab: &Vocab, scores: &[f32]) -> Vec<(String, String)> {
    struct Ranked<'a> {
        score: f32,
        left_chars: usize,
        id: u32,
        left: &'a str,
        right: &'a str,
    }
    let mut ranked: Vec<Ranked> = Vec::new();
    for (token, &id) in vocab {
        for (left_chars, (at, _)) in token.char_indices().enumerate().skip(1) {
            let (left, right) = token.split_at(at);
            if vocab.contains_key(left) && vocab.contains_key(right) {
                ranked.push(Ranked { score: scores[id as usize], left_chars, id, left, right });
            }
        }
    }
    ranked.sort_unstable_by(|a, b| {
        b.score.total_cmp(&a.score).then(b.left_chars.cmp(&a.left_chars)).then(a.id.cmp(&b.id))
    });
    ranked.into_iter().map(|m| (m.left.to_string(), m.right.to_string())).collect()
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

#[cfg(test)]
mod tests {
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer as _};

    use super::*;

    /// The pieces `pre`'s regexes cut `text` into (before the byte-level mapping).
    fn pieces(pre: &str, text: &str) -> Vec<String> {
        let steps: Vec<PreTokenizerWrapper> = pre_tokenizer(Some(pre))
            .splits
            .iter()
            .map(|r| {
                Split::new(SplitPattern::Regex((*r).into()), SplitDelimiterBehavior::Isolated, false).unwrap().into()
            })
            .collect();
        let mut pretokenized = PreTokenizedString::from(text);
        Sequence::new(steps).pre_tokenize(&mut pretokenized).unwrap();
        pretokenized
            .get_splits(OffsetReferential::Original, OffsetType::Char)
            .into_iter()
            .map(|(piece, _, _)| piece.to_string())
            .collect()
    }

    #[test]
    fn llama_bpe_groups_digits_in_threes_and_keeps_contractions() {
        assert_eq!(pieces("llama-bpe", "1234567 x12"), ["123", "456", "7", " x", "12"]);
        assert_eq!(
            pieces("llama-bpe", "I'm sure we'RE fine, they'll"),
            ["I", "'m", " sure", " we", "'RE", " fine", ",", " they", "'ll"]
        );
        // Case folding is ASCII only, as in llama.cpp: U+017F is a letter, not an `s`.
        assert_eq!(pieces("llama-bpe", "it\u{17f}"), ["it\u{17f}"]);
        assert_eq!(pieces("llama-bpe", "a  \n\n  b"), ["a", "  \n\n", " ", " b"]);
        assert!(pre_tokenizer(Some("llama-bpe")).ignore_merges);
    }

    #[test]
    fn digits_split_by_family() {
        assert_eq!(pieces("qwen2", "2025"), ["2", "0", "2", "5"]);
        assert_eq!(pieces("smollm", "a 42"), ["a", " ", "4", "2"]);
        assert_eq!(pieces("gpt-2", "a 4242"), ["a", " 4242"]);
        assert_eq!(pieces("deepseek-coder", "x 12"), ["x", " ", "1", "2"]);
    }

    #[test]
    fn every_catalogue_entry_compiles_and_unknown_names_fall_back() {
        for pre in PRE_TOKENIZERS {
            split_then_byte_level(pre).unwrap_or_else(|e| panic!("{:?}: {e}", pre.names));
        }
        assert!(std::ptr::eq(pre_tokenizer(Some("no-such-pre")), pre_tokenizer(Some("default"))));
        assert!(std::ptr::eq(pre_tokenizer(None), pre_tokenizer(Some("default"))));
    }

    fn strings(items: &[&str]) -> Value {
        Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
    }

    /// A SentencePiece vocabulary: `<unk>`, `<s>`, `</s>`, then `normal` with their scores.
    fn spm_metadata(normal: &[(&str, f32)]) -> HashMap<String, Value> {
        let mut tokens = vec!["<unk>", "<s>", "</s>"];
        let mut scores = vec![0.0, 0.0, 0.0];
        let mut types = vec![UNKNOWN_TOKEN_TYPE, CONTROL_TOKEN_TYPE, CONTROL_TOKEN_TYPE];
        for (token, score) in normal {
            tokens.push(token);
            scores.push(*score);
            types.push(1);
        }
        HashMap::from([
            ("tokenizer.ggml.model".to_string(), Value::String("llama".into())),
            ("tokenizer.ggml.tokens".to_string(), strings(&tokens)),
            ("tokenizer.ggml.scores".to_string(), Value::Array(scores.into_iter().map(Value::F32).collect())),
            ("tokenizer.ggml.token_type".to_string(), Value::Array(types.into_iter().map(Value::I32).collect())),
        ])
    }

    fn tokens_of(tokenizer: &Tokenizer, text: &str) -> Vec<String> {
        tokenizer.encode(text, false).unwrap().get_tokens().to_vec()
    }

    #[test]
    fn sentencepiece_merges_the_best_scoring_pair_first() {
        let md = spm_metadata(&[
            ("▁", -1.0),
            ("a", -2.0),
            ("b", -3.0),
            ("c", -4.0),
            ("ab", -5.0),
            ("bc", -6.0),
            ("▁a", -7.0),
        ]);
        let tokenizer = from_gguf_metadata(&md).unwrap();
        // "ab" outscores "▁a" and "bc": ▁ | ab | c.
        assert_eq!(tokens_of(&tokenizer, "abc"), ["▁", "ab", "c"]);
        // Unknown characters fall back to bytes, or to <unk> without byte tokens.
        assert_eq!(tokens_of(&tokenizer, "a\u{e9}"), ["▁a", "<unk>"]);
        assert!(adds_bos(&md));
    }

    #[test]
    fn sentencepiece_ties_merge_leftmost_first_like_llama_cpp() {
        // Llama 2's runs of ▁ all score -1e9: llama.cpp grows the leftmost run first, so five ▁
        // (four spaces and the prefix space) with runs up to four become ▁▁▁▁ + ▁, not ▁▁ + ▁▁▁.
        let runs: Vec<String> = (2..=4).map(|n| "▁".repeat(n)).collect();
        let mut normal = vec![("▁", -1e9), ("x", -1.0)];
        normal.extend(runs.iter().map(|r| (r.as_str(), -1e9)));
        let tokenizer = from_gguf_metadata(&spm_metadata(&normal)).unwrap();
        assert_eq!(tokens_of(&tokenizer, "    x"), ["▁▁▁▁", "▁", "x"]);
        assert_eq!(tokens_of(&tokenizer, "      x"), ["▁▁▁▁", "▁▁▁", "x"]);
        assert_eq!(tokens_of(&tokenizer, "         x"), ["▁▁▁▁", "▁▁▁▁", "▁▁", "x"]);
    }

    #[test]
    fn bos_defaults_follow_llama_cpp() {
        let md = |pairs: &[(&str, Value)]| -> HashMap<String, Value> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
        };
        let gpt2 = Value::String("gpt2".into());
        assert!(adds_bos(&md(&[
            ("tokenizer.ggml.model", gpt2.clone()),
            ("tokenizer.ggml.pre", Value::String("llama-bpe".into()))
        ])));
        assert!(!adds_bos(&md(&[
            ("tokenizer.ggml.model", gpt2.clone()),
            ("tokenizer.ggml.pre", Value::String("qwen2".into()))
        ])));
        assert!(!adds_bos(&md(&[
            ("tokenizer.ggml.model", Value::String("llama".into())),
            ("tokenizer.ggml.add_bos_token", Value::Bool(false))
        ])));
    }
}
