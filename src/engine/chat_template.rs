//! The chat template stored in the GGUF (`tokenizer.chat_template`, Jinja), rendered with
//! minijinja. Using the model's own template is more correct than hard-coding ChatML per family;
//! ChatML is only the fallback for a GGUF that carries none.

use minijinja::{Environment, ErrorKind, context};
use serde::Serialize;

use super::EngineError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self { role: "system".into(), content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self { role: "user".into(), content: content.into() }
    }
}

const CHATML: &str = "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("bos_token", &self.bos_token).finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compile `source` (or ChatML when `None`). Errors name what is wrong with the template.
    pub fn new(source: Option<&str>, bos_token: &str, eos_token: &str) -> Result<Self, EngineError> {
        let mut env = Environment::new();
        // HF templates call Python string methods (`.strip()`, `.startswith()`) and these helpers.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned("chat", source.unwrap_or(CHATML).to_string())
            .map_err(|e| EngineError::Template(e.to_string()))?;
        Ok(Self { env, bos_token: bos_token.to_string(), eos_token: eos_token.to_string() })
    }

    /// The prompt text for `messages`, ending where the assistant's answer begins.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, EngineError> {
        let template = self.env.get_template("chat").map_err(|e| EngineError::Template(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| EngineError::Template(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_fallback_renders_the_generation_prompt() {
        let t = ChatTemplate::new(None, "", "<|im_end|>").unwrap();
        let text = t.render(&[ChatMessage::system("Be brief."), ChatMessage::user("Hi")]).unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_string_methods_and_raise_exception_work() {
        let src = "{% if messages[0].role != 'system' %}{{ raise_exception('system first') }}{% endif %}{{ bos_token }}{{ messages[0].content.strip() }}";
        let t = ChatTemplate::new(Some(src), "<s>", "</s>").unwrap();
        assert_eq!(t.render(&[ChatMessage::system("  x  ")]).unwrap(), "<s>x");
        let err = t.render(&[ChatMessage::user("x")]).unwrap_err().to_string();
        assert!(err.contains("system first"), "{err}");
    }

    #[test]
    fn a_broken_template_is_a_clear_error() {
        assert!(matches!(ChatTemplate::new(Some("{% for %}"), "", ""), Err(EngineError::Template(_))));
    }
}
