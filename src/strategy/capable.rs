//! How a capable model is used, family by family: every family goes through the one
//! [`whole_piece`] loop, and differs only in the shape it asks for and the checks it adds.
//! Translation is checked sentence by sentence, number by number and name by name against its
//! source; code is checked for a closed block, balanced brackets and (Python) parsing, and goes
//! out as a file too. Logos and data tables are not here: they are built and computed in Rust
//! whatever the model.

use super::compose::{Draft, Writer};
use super::requirements::TaskFamily;
use super::whole_piece::{self, Shape};
use super::{GenerationPlan, code, translation};
use crate::engine::EngineError;
use crate::protocol::Brief;

/// Tokens a code answer needs at least: findings, the corrected code and its tests.
const CODE_MIN_TOKENS: usize = 900;

pub async fn write(brief: &Brief, plan: &GenerationPlan, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    match plan.requirements.family {
        TaskFamily::Translation => translate(brief, plan, writer).await,
        TaskFamily::Code => match code::CodeTask::of(brief) {
            // A regular expression is checked against the brief's own examples, line by line.
            code::CodeTask::Regex => code::write(brief, plan, writer).await,
            task => write_code(brief, plan, task, writer).await,
        },
        _ => {
            let shape = whole_piece::shape_for(&plan.requirements, &brief.kind_of_work());
            whole_piece::write(brief, plan, writer, shape, &|_| Vec::new()).await
        }
    }
}

async fn translate(brief: &Brief, plan: &GenerationPlan, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    let languages = translation::Languages::of(brief, plan);
    let source = translation::source_text(&brief.description);
    let shape = Shape::prose(format!(
        "Translate the whole text into {}, as a native professional translator would: natural, not word \
         for word. Keep its line breaks and formatting, keep brand, product, company and street names as \
         written, and keep every number and date. Output only the translation, nothing before or after it.",
        languages.target_description
    ));
    let names = plan.requirements.names.clone();
    let checks = move |text: &str| translation::translation_checks(&source, text, &languages, &names);
    whole_piece::write(brief, plan, writer, shape, &checks).await
}

async fn write_code(
    brief: &Brief,
    plan: &GenerationPlan,
    task: code::CodeTask,
    writer: &mut Writer<'_>,
) -> Result<Draft, EngineError> {
    let language = code::language(&plan.requirements.format, brief);
    let display = code::display(&language);
    let fence = code::fence_language(&language);
    let guidance = match &task {
        code::CodeTask::Review { .. } => format!(
            "Structure the review as `## Bugs`, `## Edge cases` and `## Style`: only real problems, each \
             naming the function, what goes wrong and the fix (no padding: no remarks on name lengths or \
             missing docstrings unless they cause harm). Then `## Corrected code` with the whole corrected \
             code in one ```{fence} block, then `## Tests`: a few tests that fail on the original and pass on \
             the fix."
        ),
        _ => format!(
            "Give the complete, runnable {display} code in one ```{fence} block first, handling the errors and \
             edge cases the brief implies, standard library only unless the brief names a package. Then \
             `## How to run` (the exact command) and `## What it handles`, a short list."
        ),
    };
    let shape = Shape { guidance, prefix: String::new(), code: true, min_tokens: CODE_MIN_TOKENS };
    let checks = {
        let language = language.clone();
        move |text: &str| {
            let (code, closed) = code::largest_block(text);
            code::code_checks(&code, &language, closed)
        }
    };
    let mut draft = whole_piece::write(brief, plan, writer, shape, &checks).await?;
    let (code, closed) = code::largest_block(&draft.text);
    if closed && !code.trim().is_empty() {
        let review = matches!(task, code::CodeTask::Review { .. });
        let filename = code::file_name(&code, &language, &brief.title, review);
        draft.artifacts.push(code::code_artifact(&brief.title, &filename, &language, &code));
    }
    Ok(draft)
}
