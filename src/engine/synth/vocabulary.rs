//! The synthetic models' vocabulary: GPT-2's 256 byte tokens (with no merges, any text encodes
//! one byte a token), the family's special tokens and chat template, then unused tokens up to
//! the real vocabulary's size, so that the embedding lookup and the output matrix are
//! real-sized. The tokenizer our loader rebuilds from it (`engine::tokenizer`) is the one real
//! files get: byte-level BPE with special tokens matched whole.

use candle_core::quantized::gguf_file::Value;

/// GGUF token types (llama.cpp's `llama_token_type`).
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const UNUSED: i32 = 5;

/// Which family's special tokens and chat template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavour {
    /// Llama 3: a BOS token, header tokens around the role, `<|eot_id|>` ends a turn.
    Llama3,
    /// ChatML (Qwen and the other families here): `<|im_start|>role … <|im_end|>`.
    ChatMl,
}

const LLAMA3_SPECIALS: &[&str] =
    &["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"];
const CHATML_SPECIALS: &[&str] = &["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

const LLAMA3_TEMPLATE: &str = "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message.role }}<|end_header_id|>\n\n{{ message.content }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";
const CHATML_TEMPLATE: &str = "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// GPT-2's byte-to-character table: printable bytes stand for themselves, the others get the
/// characters from U+0100 on, in byte order.
fn byte_level_alphabet() -> Vec<String> {
    let printable = |b: u32| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut substitutes = 0x100..;
    (0u32..256)
        .map(|b| {
            let code = if printable(b) { b } else { substitutes.next().expect("an endless range") };
            char::from_u32(code).expect("below the surrogates").to_string()
        })
        .collect()
}

/// The `tokenizer.*` metadata of a vocabulary of `size` tokens (at least the bytes and the
/// special tokens).
pub(super) fn metadata(flavour: Flavour, size: usize) -> Vec<(String, Value)> {
    let specials = match flavour {
        Flavour::Llama3 => LLAMA3_SPECIALS,
        Flavour::ChatMl => CHATML_SPECIALS,
    };
    let mut tokens = byte_level_alphabet();
    let mut types = vec![NORMAL; tokens.len()];
    let first_special = tokens.len();
    tokens.extend(specials.iter().map(|s| s.to_string()));
    types.extend(specials.iter().map(|_| CONTROL));
    // llama.cpp's converter pads a vocabulary with `[PAD<id>]` tokens of this type.
    for id in tokens.len()..size {
        tokens.push(format!("[PAD{id}]"));
        types.push(UNUSED);
    }
    let id_of = |special: &str| {
        let offset = specials.iter().position(|s| *s == special).expect("one of this flavour's specials");
        Value::U32((first_special + offset) as u32)
    };
    let strings = |values: Vec<String>| Value::Array(values.into_iter().map(Value::String).collect());
    let mut metadata = vec![
        ("tokenizer.ggml.model".to_string(), Value::String("gpt2".into())),
        ("tokenizer.ggml.tokens".to_string(), strings(tokens)),
        ("tokenizer.ggml.token_type".to_string(), Value::Array(types.into_iter().map(Value::I32).collect())),
        ("tokenizer.ggml.merges".to_string(), Value::Array(Vec::new())),
    ];
    let (pre, template, adds_bos) = match flavour {
        Flavour::Llama3 => {
            metadata.push(("tokenizer.ggml.bos_token_id".into(), id_of("<|begin_of_text|>")));
            metadata.push(("tokenizer.ggml.eos_token_id".into(), id_of("<|eot_id|>")));
            ("llama-bpe", LLAMA3_TEMPLATE, true)
        }
        Flavour::ChatMl => {
            metadata.push(("tokenizer.ggml.eos_token_id".into(), id_of("<|im_end|>")));
            ("qwen2", CHATML_TEMPLATE, false)
        }
    };
    metadata.push(("tokenizer.ggml.pre".into(), Value::String(pre.into())));
    metadata.push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(adds_bos)));
    metadata.push(("tokenizer.chat_template".into(), Value::String(template.into())));
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alphabet_is_gpt2s() {
        let alphabet = byte_level_alphabet();
        assert_eq!(alphabet.len(), 256);
        assert_eq!((alphabet[b'A' as usize].as_str(), alphabet[b' ' as usize].as_str()), ("A", "\u{120}"));
        assert_eq!(alphabet[0], "\u{100}");
        let distinct: std::collections::HashSet<&String> = alphabet.iter().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn the_vocabulary_is_padded_to_its_size_and_names_its_specials() {
        let metadata = metadata(Flavour::Llama3, 1000);
        let get = |key: &str| &metadata.iter().find(|(k, _)| k == key).unwrap().1;
        let tokens = get("tokenizer.ggml.tokens").to_vec().unwrap();
        assert_eq!(tokens.len(), 1000);
        assert_eq!(get("tokenizer.ggml.token_type").to_vec().unwrap().len(), 1000);
        let token = |id: &Value| tokens[id.to_u32().unwrap() as usize].to_string().unwrap().clone();
        assert_eq!(token(get("tokenizer.ggml.bos_token_id")), "<|begin_of_text|>");
        assert_eq!(token(get("tokenizer.ggml.eos_token_id")), "<|eot_id|>");
        assert_eq!(tokens[999].to_string().unwrap(), "[PAD999]");
    }
}
