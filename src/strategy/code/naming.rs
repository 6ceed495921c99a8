//! Languages and files: the code's language (the brief's stated one, else the one its text names),
//! its name for prose and the word after its Markdown fence, its file extension and MIME type, a
//! filename taken from the code or the title, and the `file` artifact that carries the code.

use regex::Regex;

use crate::protocol::{Artifact, Brief};
use crate::strategy::requirements::OutputFormat;

/// The language of the code: the brief's stated one, else the one its text names, else Python.
pub fn language(format: &OutputFormat, brief: &Brief) -> String {
    if let OutputFormat::Code(stated) = format
        && !stated.is_empty()
        && stated != "text"
    {
        return normalise_language(stated);
    }
    let text = format!(" {} {} ", brief.title, brief.description).to_lowercase();
    const NAMED: &[(&str, &str)] = &[
        (" python", "python"),
        (" sql", "sql"),
        (" query", "sql"),
        (" javascript", "javascript"),
        (" node", "javascript"),
        (" typescript", "typescript"),
        (" bash", "bash"),
        (" shell", "bash"),
        (" rust ", "rust"),
        (" golang", "go"),
        (" regex", "regex"),
        (" regular expression", "regex"),
    ];
    NAMED.iter().find(|(marker, _)| text.contains(marker)).map_or("python", |(_, lang)| lang).to_string()
}

fn normalise_language(stated: &str) -> String {
    let lower = stated.trim().to_lowercase();
    let first = lower.split(|c: char| !(c.is_alphanumeric() || c == '+' || c == '#')).next().unwrap_or("");
    match first {
        "py" | "python3" | "python" => "python",
        "js" | "node" | "nodejs" | "javascript" => "javascript",
        "ts" | "typescript" => "typescript",
        "sh" | "shell" | "bash" | "zsh" => "bash",
        "postgres" | "postgresql" | "mysql" | "sqlite" | "tsql" | "sql" => "sql",
        "golang" | "go" => "go",
        "rs" | "rust" => "rust",
        "regexp" | "regex" => "regex",
        other => other,
    }
    .to_string()
}

/// The language's name for prose.
pub fn display(language: &str) -> String {
    match language {
        "python" => "Python".into(),
        "sql" => "SQL".into(),
        "javascript" => "JavaScript".into(),
        "typescript" => "TypeScript".into(),
        "bash" => "Bash".into(),
        "rust" => "Rust".into(),
        "go" => "Go".into(),
        "regex" => "regular expression".into(),
        other => {
            let mut chars = other.chars();
            chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
        }
    }
}

/// The word after a Markdown fence.
pub fn fence_language(language: &str) -> &str {
    match language {
        "" => "text",
        other => other,
    }
}

/// The file extension and MIME type for code in `language`.
fn extension(language: &str) -> (&'static str, &'static str) {
    match language {
        "python" => ("py", "text/x-python"),
        "sql" => ("sql", "application/sql"),
        "javascript" => ("js", "text/javascript"),
        "typescript" => ("ts", "text/x-typescript"),
        "bash" => ("sh", "application/x-sh"),
        "rust" => ("rs", "text/x-rust"),
        "go" => ("go", "text/x-go"),
        "java" => ("java", "text/x-java"),
        "ruby" => ("rb", "text/x-ruby"),
        "php" => ("php", "application/x-php"),
        "c" => ("c", "text/x-c"),
        "cpp" | "c++" => ("cpp", "text/x-c++"),
        "csharp" | "c#" => ("cs", "text/x-csharp"),
        _ => ("txt", "text/plain"),
    }
}

pub fn code_artifact(title: &str, filename: &str, language: &str, code: &str) -> Artifact {
    let (_, mime) = extension(language);
    let title = if title.is_empty() { filename.to_string() } else { title.to_string() };
    Artifact::file(title, filename, mime, format!("{}\n", code.trim_end()))
}

/// A filename for the code: for a review, its first function's name; for written code, the
/// title's key words (a model's function names can be odd); either falls back to the other.
pub fn file_name(code: &str, language: &str, title: &str, prefer_code: bool) -> String {
    let (ext, _) = extension(language);
    let function = Regex::new(r"(?m)^\s*(?:async\s+)?(?:def|function|fn|pub fn)\s+([A-Za-z_]\w*)")
        .expect("valid pattern")
        .captures_iter(code)
        .map(|c| c[1].to_string())
        .find(|name| name != "main");
    let separator = if matches!(language, "python" | "rust") { "_" } else { "-" };
    let slug = title_slug(title, separator);
    let stem = match (prefer_code, function, slug) {
        (true, Some(function), _) => function,
        (_, _, Some(slug)) => slug,
        (false, Some(function), None) => function,
        (_, None, None) => "main".to_string(),
    };
    format!("{stem}.{ext}")
}

/// The title's content words, lower case, joined by `separator`, at most five words.
fn title_slug(title: &str, separator: &str) -> Option<String> {
    const SKIP: &[&str] = &[
        "a", "an", "the", "to", "for", "of", "by", "in", "on", "and", "or", "with", "this", "that", "my", "our",
        "script", "code", "program", "function", "python", "write", "need", "please", "simple", "small",
    ];
    let words: Vec<String> = title
        .to_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && !SKIP.contains(w))
        .take(5)
        .map(str::to_string)
        .collect();
    (!words.is_empty()).then(|| words.join(separator))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{REVIEWED, fixture};
    use super::*;

    #[test]
    fn filenames_come_from_the_code_or_the_title() {
        assert_eq!(
            file_name(REVIEWED, "python", "Review this Python function for bugs", true),
            "average_order_value.py"
        );
        let title = "Script to rename photos by date taken";
        assert_eq!(
            file_name("import os\ndef main():\n    pass", "python", title, false),
            "rename_photos_date_taken.py"
        );
        assert_eq!(file_name("SELECT 1;", "sql", "Monthly revenue query", false), "monthly-revenue-query.sql");
        assert_eq!(file_name("def helper():\n    pass", "python", "", false), "helper.py");
        assert_eq!(file_name("echo hi", "bash", "", false), "main.sh");
    }

    #[test]
    fn languages_are_read_from_the_brief() {
        let brief = fixture("script-rename-photos");
        assert_eq!(language(&OutputFormat::Code("python".into()), &brief), "python");
        assert_eq!(language(&OutputFormat::Code("text".into()), &brief), "python");
        assert_eq!(normalise_language("PostgreSQL"), "sql");
        assert_eq!(normalise_language("js"), "javascript");
    }
}
