//! Run, read, repair: code written or fixed for a brief goes out with tests that were run. The
//! model writes tests from the brief's own examples and edge cases; they run in the sandbox
//! (`crate::sandbox`) against the code; failures — the failing test named, its error quoted — go
//! back to the model while the deadline allows, and the version that passed the most tests is
//! sent. For a bug fix the same tests also run on the original code, so the answer can show they
//! catch the bug. The response reports what ran and what passed (`code:tests_passed`, the tests
//! as a file) and never claims a run that did not happen: without a sandbox the check says why.

use std::time::{Duration, Instant};

use super::MAX_BRIEF_CHARS;
use super::checks::{code_checks, fenced_code};
use super::examples::{self, BriefExample};
use super::naming::{code_artifact, display, fence_language};
use super::rewrite::{Failing, Rewrite, keeps_what_is_called, rewritten};
use super::runners::{Runner, TestRun};
use super::suites;
use super::test_report::{first_line, fix_check, note, tests_check, tests_section};
use crate::engine::{Capability, EngineError, FinishReason};
use crate::protocol::{Brief, Check, Phase};
use crate::sandbox::{Limits, Sandbox, SourceFile};
use crate::strategy::compose::{Ask, Draft, Writer, check};
use crate::strategy::{GenerationPlan, prompt};

/// Tokens for the tests: a handful of short test functions.
const PROTOTYPE_TEST_TOKENS: usize = 420;
const FINAL_TEST_TOKENS: usize = 700;
/// Rounds of repair from test failures, by phase (each a whole rewrite of the code).
const PROTOTYPE_REPAIRS: usize = 1;
const FINAL_REPAIRS: usize = 3;
/// Wall time for one run of the tests in the sandbox.
const TEST_WALL: Duration = Duration::from_secs(20);

/// The code under test and its tests, with what running them found.
struct Attempt {
    code: String,
    run: TestRun,
}

impl Attempt {
    /// More of the brief's own examples passed; then more tests; then code whose tests could run
    /// at all; then fewer failed.
    fn better_than(&self, other: &Attempt) -> bool {
        let rank = |a: &Attempt| {
            let run = &a.run;
            (examples::examples_passed(run), run.passed.len(), run.problem.is_none(), usize::MAX - run.failed.len())
        };
        rank(self) > rank(other)
    }
}

/// Adds tests to `draft`, whose code file is the code to test, and repairs the code from their
/// failures. `original` is the code in the brief, for a bug fix. Languages without a runner are
/// left as they are: nothing is claimed about them.
pub(super) async fn with_tests(
    brief: &Brief,
    plan: &GenerationPlan,
    language: &str,
    original: Option<&str>,
    mut draft: Draft,
    writer: &mut Writer<'_>,
) -> Result<Draft, EngineError> {
    // A model below Prose writes tests that test nothing (or the wrong thing), and a run of
    // them would only report noise or, worse, steer a repair away from a fix made for certain.
    if writer.capability() == Capability::Basic {
        return Ok(draft);
    }
    let Some(runner) = Runner::for_language(language) else { return Ok(draft) };
    let Some(at) = draft.artifacts.iter().position(|a| a.filename.is_some()) else { return Ok(draft) };
    let filename = draft.artifacts[at].filename.clone().unwrap_or_default();
    let written = draft.artifacts[at].content.trim_end().to_string();
    // The model's own inline tests run on import and would stop the real ones loading; they
    // are replaced by the tests below.
    let first_code = runner.without_inline_tests(&written);
    draft.text = draft.text.replace(&written, &first_code);
    let sandbox = match plan.code_exec.sandbox() {
        Some(sandbox) => sandbox.clone(),
        None => {
            let why = plan.code_exec.why_not().unwrap_or("no sandbox is set up").to_string();
            draft.checks.push(not_run(&format!("the code was not run: {why}")));
            return Ok(draft);
        }
    };
    if sandbox.interpreter(runner.interpreter()).is_none() {
        let why = format!("the code was not run: {} is not installed where code runs", runner.interpreter());
        draft.checks.push(not_run(&why));
        return Ok(draft);
    }

    let started = Instant::now();
    // Tests the model wrote with the code were written from the brief alongside it: they are
    // run as they are, not asked for again.
    let inline = runner.inline_tests(&written).map(|tests| {
        format!("{}\n\n{}", runner.test_preamble(&filename, &first_code), runner.in_runners_words(&tests))
    });
    let inline = inline.map(|tests| suites::sound_tests(&tests, runner)).filter(|tests| runner.has_test(tests));
    let tests = match inline {
        Some(tests) => Some(tests),
        None => write_tests(brief, runner, language, &filename, &first_code, writer).await?,
    };
    let examples = examples::brief_examples(&brief.description, runner, &first_code);
    let preamble = runner.test_preamble(&filename, &first_code);
    let tests = match tests {
        Some(tests) => Some(with_examples(runner, tests, &examples)),
        None => only_examples(runner, &preamble, &examples),
    };
    let Some(tests) = tests else {
        draft.checks.push(not_run("no tests that check anything could be written in the time there was"));
        return Ok(draft);
    };
    let test_cost = started.elapsed();
    let test_file = runner.test_file(&filename);
    let run = run_tests(&sandbox, runner, &filename, &first_code, &test_file, &tests).await;
    let (mut tests, mut run) =
        without_faulty_tests(&sandbox, runner, &filename, &first_code, &test_file, tests, run).await;
    // Tests that cannot run while the code loads on its own are broken tests, not broken
    // code: they are written once more, and never used to rewrite the code.
    if tests_at_fault(&run, &first_code) && loads(&sandbox, runner, &filename, &first_code).await {
        let rewritten = match writer.time_left() > test_cost.mul_f64(1.3) {
            true => write_tests(brief, runner, language, &filename, &first_code, writer)
                .await?
                .map(|tests| with_examples(runner, tests, &examples)),
            false => None,
        };
        let retried = match rewritten {
            Some(again) => {
                let retried = run_tests(&sandbox, runner, &filename, &first_code, &test_file, &again).await;
                Some(without_faulty_tests(&sandbox, runner, &filename, &first_code, &test_file, again, retried).await)
            }
            None => None,
        };
        // Failing that, the brief's examples still test the code on their own.
        let retried = match (retried, only_examples(runner, &preamble, &examples)) {
            (Some(retried), _) if !tests_at_fault(&retried.1, &first_code) => Some(retried),
            (_, Some(own)) => {
                let run = run_tests(&sandbox, runner, &filename, &first_code, &test_file, &own).await;
                Some((own, run))
            }
            (retried, None) => retried,
        };
        match retried {
            Some((again, retried)) if !tests_at_fault(&retried, &first_code) => (tests, run) = (again, retried),
            _ => {
                let why = run.problem.as_deref().map(first_line).unwrap_or_default().to_string();
                draft.checks.push(not_run(&format!(
                    "the tests written for it could not run ({why}), so none are included; the code itself loads"
                )));
                return Ok(draft);
            }
        }
    }
    let mut best = Attempt { code: first_code.clone(), run };

    let repairs = match brief.phase {
        Phase::Prototype => PROTOTYPE_REPAIRS,
        Phase::Final => FINAL_REPAIRS,
    };
    // A repair patches the best code so far. When one does not help, the next round writes the
    // code afresh against the tests: a small model's patches stay anchored to a design that
    // cannot work, and a fresh sample need not.
    let mut rewrite = Rewrite::Repair;
    for round in 1..=repairs {
        if best.run.all_passed() {
            break;
        }
        // A rewrite costs about what the tests cost, scaled by how much longer the code is.
        let scale = (best.code.len() as f64 / tests.len().max(1) as f64).max(1.0);
        if writer.time_left() < test_cost.mul_f64(scale * 1.3) {
            break;
        }
        let failing = Failing { filename: &filename, code: &best.code, tests: &tests, run: &best.run };
        let improved = match rewritten(brief, language, &failing, rewrite, writer).await? {
            None => false,
            Some(code) if !keeps_what_is_called(runner, &best.code, &code, &tests, rewrite) => {
                tracing::info!(?rewrite, "the rewrite dropped a function the code defined; not used");
                false
            }
            Some(code) => {
                let run = run_tests(&sandbox, runner, &filename, &code, &test_file, &tests).await;
                let attempt = Attempt { code, run };
                tracing::info!(
                    round,
                    ?rewrite,
                    passed = attempt.run.passed.len(),
                    failed = attempt.run.failed.len(),
                    loads = attempt.run.problem.is_none(),
                    "the tests ran on a rewrite"
                );
                let better = attempt.better_than(&best);
                if better {
                    best = attempt;
                }
                better
            }
        };
        if !improved {
            rewrite = rewrite.other();
        }
    }
    let on_original = match original {
        Some(original) => Some(run_tests(&sandbox, runner, &filename, original, &test_file, &tests).await),
        None => None,
    };

    let code = runner.importable(&best.code);
    draft.text = draft.text.replace(&first_code, code.trim_end());
    draft.artifacts[at] = code_artifact(&brief.title, &filename, language, &code);
    if best.code != first_code {
        let fresh = code_checks(&code, language, true);
        draft.checks.retain(|c| !fresh.iter().any(|f| f.name == c.name));
        draft.checks.extend(fresh);
    }
    draft.checks.push(tests_check(&best.run));
    if let Some(on_original) = &on_original {
        draft.checks.push(fix_check(on_original, &best.run));
    }
    draft.text.push_str(&tests_section(runner, language, &test_file, &tests, &best.run, on_original.as_ref()));
    draft.artifacts.push(code_artifact(&format!("Tests: {}", brief.title), &test_file, language, &tests));
    draft.note = Some(note(brief.phase, &best.run, on_original.as_ref()));
    Ok(draft)
}

/// The model's tests with the brief's examples after them, less any test that expects another
/// value than the brief does for the same call or only repeats its examples.
fn with_examples(runner: Runner, tests: String, examples: &[BriefExample]) -> String {
    if examples.is_empty() {
        return tests;
    }
    let wrong = examples::tests_the_examples_replace(&tests, runner, examples);
    if !wrong.is_empty() {
        tracing::info!(
            left_out = wrong.len(),
            "tests that contradict or only repeat the brief's examples were left out"
        );
    }
    let names: Vec<&str> = wrong.iter().map(String::as_str).collect();
    let kept = suites::without_tests(&tests, runner, &names);
    format!("{}\n\n\n{}", kept.trim_end(), examples::example_tests(runner, examples))
}

/// The brief's examples alone as the tests, when there are any.
fn only_examples(runner: Runner, preamble: &str, examples: &[BriefExample]) -> Option<String> {
    (!examples.is_empty()).then(|| format!("{preamble}\n\n{}", examples::example_tests(runner, examples)))
}

fn not_run(why: &str) -> Check {
    check("code:tests_passed", false, why)
}

/// The model's tests for the code, opening with the imports the runner needs.
async fn write_tests(
    brief: &Brief,
    runner: Runner,
    language: &str,
    filename: &str,
    code: &str,
    writer: &mut Writer<'_>,
) -> Result<Option<String>, EngineError> {
    let lang = display(language);
    let fence = fence_language(language);
    let how = match runner {
        Runner::Python => {
            "Write pytest tests: plain `def test_…():` functions with `assert` and `pytest.raises` for errors \
             (and the `tmp_path` fixture if files are involved). Use only the standard library."
        }
        Runner::JavaScript => {
            "Write tests with node:test: `test('…', () => { … })` and `assert.strictEqual` / `assert.deepStrictEqual`. \
             No jest and no DOM. For a stand-in function use node:test's `mock.fn()` (`f.mock.callCount()` counts \
             its calls); for timers, `mock.timers.enable({ apis: ['setTimeout'] })` and `mock.timers.tick(ms)`."
        }
    };
    let user = format!(
        "# {}\n\n{}\n\nThe code, saved as `{filename}`:\n\n```{fence}\n{code}\n```\n\n{how} One short test per \
         behaviour the brief asks for, using the brief's own examples and values, plus its edge cases (empty or \
         invalid input). Test the functions, not the command line. Output only the {lang} test code.",
        brief.title,
        prompt::truncate_chars(&brief.description, MAX_BRIEF_CHARS),
    );
    let preamble = runner.test_preamble(filename, code);
    let tokens = match brief.phase {
        Phase::Prototype => PROTOTYPE_TEST_TOKENS,
        Phase::Final => FINAL_TEST_TOKENS,
    };
    let system = format!("You are an expert {lang} developer who writes precise, minimal unit tests.");
    let opening = runner.first_test_opening();
    let ask = Ask::new(system, user, tokens).prefix(format!("```{fence}\n{preamble}{opening}")).code().share(0.5);
    let Some(reply) = writer.ask(&ask).await? else { return Ok(None) };
    let (tests, closed) = fenced_code(&reply.text);
    let tests = runner.in_runners_words(&runner.without_test_calls(&tests));
    let tests = suites::sound_tests(&tests, runner);
    let tests = match closed || reply.finish == FinishReason::Eos {
        true => tests,
        // Cut off mid-test: keep the tests that were finished.
        false => drop_unfinished_test(&tests, runner),
    };
    Ok(runner.has_test(&tests).then_some(tests))
}

/// The tests up to the start of the last one, which was cut off.
fn drop_unfinished_test(tests: &str, runner: Runner) -> String {
    let marker = match runner {
        Runner::Python => "\ndef test",
        Runner::JavaScript => "\ntest(",
    };
    match tests.rfind(marker) {
        Some(at) if tests[..at].contains(marker) => tests[..at].trim_end().to_string(),
        _ => tests.to_string(),
    }
}

async fn run_tests(
    sandbox: &Sandbox,
    runner: Runner,
    filename: &str,
    code: &str,
    test_file: &str,
    tests: &str,
) -> TestRun {
    let files = [
        SourceFile { name: filename.to_string(), content: runner.importable(code) },
        SourceFile { name: test_file.to_string(), content: tests.to_string() },
    ];
    match run_in(sandbox, &files, &runner.command(test_file)).await {
        Ok(outcome) => runner.read(&outcome, TEST_WALL.as_secs()),
        Err(err) => {
            tracing::warn!(error = %err, "the sandbox could not run the tests");
            TestRun { problem: Some("the sandbox could not run the tests".into()), ..TestRun::default() }
        }
    }
}

/// Tests that could not run, or whose every failure is the tests' own fault.
fn tests_at_fault(run: &TestRun, code: &str) -> bool {
    run.problem.is_some()
        || (run.passed.is_empty()
            && !run.failed.is_empty()
            && run.failed.iter().all(|f| suites::test_at_fault(f, code)))
}

/// The tests without those that failed through their own fault, run again, when others are left:
/// a test that cannot judge the code should neither steer a repair nor go out with the answer.
async fn without_faulty_tests(
    sandbox: &Sandbox,
    runner: Runner,
    filename: &str,
    code: &str,
    test_file: &str,
    tests: String,
    run: TestRun,
) -> (String, TestRun) {
    let faulty: Vec<&str> =
        run.failed.iter().filter(|f| suites::test_at_fault(f, code)).map(|f| f.test.as_str()).collect();
    if faulty.is_empty() || faulty.len() == run.total() {
        return (tests, run);
    }
    let kept = suites::without_tests(&tests, runner, &faulty);
    if kept == tests {
        return (tests, run);
    }
    tracing::info!(left_out = faulty.len(), "tests at fault themselves were left out");
    let rerun = run_tests(sandbox, runner, filename, code, test_file, &kept).await;
    (kept, rerun)
}

/// Whether the code loads on its own (imports, parses, runs its top level) in the sandbox.
async fn loads(sandbox: &Sandbox, runner: Runner, filename: &str, code: &str) -> bool {
    let files = [SourceFile { name: filename.to_string(), content: runner.importable(code) }];
    run_in(sandbox, &files, &runner.load_command(filename)).await.is_ok_and(|outcome| outcome.succeeded())
}

/// `command` on `files` in the sandbox, under the default limits and the tests' wall time.
async fn run_in(
    sandbox: &Sandbox,
    files: &[SourceFile],
    command: &[String],
) -> Result<crate::sandbox::RunOutcome, crate::sandbox::SandboxError> {
    let argv: Vec<&str> = command.iter().map(String::as_str).collect();
    sandbox.run(files, &argv, &Limits { wall: TEST_WALL, ..Limits::default() }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_off_test_is_dropped_and_finished_ones_kept() {
        let tests = "import pytest\n\ndef test_a():\n    assert 1\n\ndef test_b():\n    assert f(";
        assert_eq!(drop_unfinished_test(tests, Runner::Python), "import pytest\n\ndef test_a():\n    assert 1");
    }
}
