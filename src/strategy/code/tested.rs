//! Run, read, repair: code written or fixed for a brief goes out with tests that were run. The
//! model writes tests from the brief's own examples and edge cases; they run in the sandbox
//! (`crate::sandbox`) against the code; failures — the failing test named, its error quoted — go
//! back to the model while the deadline allows, and the version that passed the most tests is
//! sent. For a bug fix the same tests also run on the original code, so the answer can show they
//! catch the bug. The response reports what ran and what passed (`code:tests_passed`, the tests
//! as a file) and never claims a run that did not happen: without a sandbox the check says why.

use std::time::{Duration, Instant};

use super::MAX_BRIEF_CHARS;
use super::checks::{code_checks, failed_details, fenced_code};
use super::naming::{code_artifact, display, fence_language};
use super::runners::{Runner, TestRun};
use super::suites;
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
/// Failing tests quoted in one repair prompt: more only dilutes a small model's attention.
const FAILURES_PER_REPAIR: usize = 2;
/// Wall time for one run of the tests in the sandbox.
const TEST_WALL: Duration = Duration::from_secs(20);

/// The code under test and its tests, with what running them found.
struct Attempt {
    code: String,
    run: TestRun,
}

impl Attempt {
    /// More tests passed; then code whose tests could run at all; then fewer failed.
    fn better_than(&self, other: &Attempt) -> bool {
        let rank = |a: &Attempt| (a.run.passed.len(), a.run.problem.is_none(), usize::MAX - a.run.failed.len());
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
    let tests = match inline {
        Some(tests) => Some(tests),
        None => write_tests(brief, runner, language, &filename, &first_code, writer).await?,
    };
    let Some(tests) = tests else {
        draft.checks.push(not_run("no tests could be written in the time there was"));
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
            true => write_tests(brief, runner, language, &filename, &first_code, writer).await?,
            false => None,
        };
        let retried = match rewritten {
            Some(again) => {
                let retried = run_tests(&sandbox, runner, &filename, &first_code, &test_file, &again).await;
                Some(without_faulty_tests(&sandbox, runner, &filename, &first_code, &test_file, again, retried).await)
            }
            None => None,
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
    for _ in 0..repairs {
        if best.run.all_passed() {
            break;
        }
        // A rewrite costs about what the tests cost, scaled by how much longer the code is.
        let scale = (best.code.len() as f64 / tests.len().max(1) as f64).max(1.0);
        if writer.time_left() < test_cost.mul_f64(scale * 1.3) {
            break;
        }
        let Some(code) = repair(brief, language, &filename, &best, writer).await? else { break };
        let kept = runner.defined_names(&code);
        if runner.defined_names(&best.code).iter().any(|name| !kept.contains(name)) {
            tracing::info!("the repair dropped a function the code defined; not used");
            continue;
        }
        let run = run_tests(&sandbox, runner, &filename, &code, &test_file, &tests).await;
        let attempt = Attempt { code, run };
        if attempt.better_than(&best) {
            best = attempt;
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
    let tests = match closed || reply.finish == FinishReason::Eos {
        true => tests,
        // Cut off mid-test: keep the tests that were finished.
        false => drop_unfinished_test(&tests, runner),
    };
    let has_test = match runner {
        Runner::Python => tests.contains("def test"),
        Runner::JavaScript => tests.contains("test("),
    };
    Ok(has_test.then_some(tests))
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

/// The code rewritten to pass the failing tests; `None` when the reply is not usable code.
async fn repair(
    brief: &Brief,
    language: &str,
    filename: &str,
    best: &Attempt,
    writer: &mut Writer<'_>,
) -> Result<Option<String>, EngineError> {
    let lang = display(language);
    let fence = fence_language(language);
    let mut failures = best.run.failures_for_repair(FAILURES_PER_REPAIR);
    if failures.contains("ModuleNotFoundError") || failures.contains("Cannot find module") {
        failures.push_str("\n\nOnly the standard library is installed: use it instead of that module.");
    }
    if failures.contains("SystemExit") || failures.contains("the following arguments are required") {
        failures.push_str("\n\nImporting the file ran the command line: put it under `if __name__ == \"__main__\":`.");
    }
    let user = format!(
        "# {}\n\n{}\n\nThe code in `{filename}`:\n\n```{fence}\n{}\n```\n\nRunning its tests gave:\n\n{failures}\n\n\
         Fix the code so it does what the brief asks and these tests pass. Output the whole corrected {lang} code.",
        brief.title,
        prompt::truncate_chars(&brief.description, MAX_BRIEF_CHARS),
        best.code,
    );
    let system = format!("You are an expert {lang} developer. You fix failing code with small, careful changes.");
    let tokens = (best.code.len() / 2 + 256).min(super::FINAL_CODE_TOKENS);
    let ask = Ask::new(system, user, tokens).prefix(format!("```{fence}\n")).code().share(0.6);
    let Some(reply) = writer.ask(&ask).await? else { return Ok(None) };
    let (code, closed) = fenced_code(&reply.text);
    let closed = closed || reply.finish == FinishReason::Eos;
    let broken = !failed_details(&code_checks(&code, language, closed)).is_empty();
    Ok((!broken).then_some(code))
}

fn tests_check(run: &TestRun) -> Check {
    match (&run.problem, run.all_passed()) {
        (Some(problem), _) => {
            let first = problem.lines().next().unwrap_or("").trim_end_matches(':');
            check("code:tests_passed", false, format!("ran in a sandbox, but {first}"))
        }
        (None, true) => check(
            "code:tests_passed",
            true,
            format!("{} of {} pass in a sandbox", run.passed.len(), tests(run.total())),
        ),
        (None, false) => {
            let failing: Vec<&str> = run.failed.iter().map(|f| f.test.as_str()).collect();
            check(
                "code:tests_passed",
                false,
                format!(
                    "{} of {} pass in a sandbox; failing: {}",
                    run.passed.len(),
                    tests(run.total()),
                    failing.join(", ")
                ),
            )
        }
    }
}

/// A fix is shown to fix something when its tests fail on the original and pass on the fix.
fn fix_check(on_original: &TestRun, on_fix: &TestRun) -> Check {
    let caught = on_original.failed.len() + usize::from(on_original.problem.is_some());
    let passed = caught > 0 && on_fix.all_passed();
    let detail = match (caught, on_fix.all_passed()) {
        (0, _) => "the tests pass on the original code too, so they do not show the bug".to_string(),
        (n, true) => format!("{n} of the tests fail on the original code and all pass on the fix"),
        (n, false) => format!("{n} of the tests fail on the original code, but the fix does not pass them all"),
    };
    check("code:fix_verified", passed, detail)
}

fn tests_section(
    runner: Runner,
    language: &str,
    test_file: &str,
    tests: &str,
    run: &TestRun,
    on_original: Option<&TestRun>,
) -> String {
    let result = match (&run.problem, run.all_passed()) {
        (Some(problem), _) => format!("We ran them before sending, but they could not run: {}", first_line(problem)),
        (None, true) => format!("We ran them before sending: all {} pass.", run.total()),
        (None, false) => {
            let failing: Vec<String> = run.failed.iter().map(|f| format!("`{}`", f.test)).collect();
            format!(
                "We ran them before sending: {} of {} pass; still failing: {}.",
                run.passed.len(),
                run.total(),
                failing.join(", ")
            )
        }
    };
    let original = match on_original {
        // Only a fix that passes them all is said to fix what they catch.
        Some(before) if (before.problem.is_some() || !before.failed.is_empty()) && run.all_passed() => {
            format!(" On the original code {} of them fail, which is the bug this fixes.", before.failed.len().max(1))
        }
        Some(before) if before.problem.is_some() || !before.failed.is_empty() => {
            format!(" On the original code {} of them fail too.", before.failed.len().max(1))
        }
        Some(_) => " They also pass on the original code, so they do not pin the bug down.".to_string(),
        None => String::new(),
    };
    format!(
        "\n\n## Tests\n\n```{}\n{}\n```\n\nRun them with `{}`. {result}{original}\n",
        fence_language(language),
        tests.trim_end(),
        runner.command_line(test_file)
    )
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim_end_matches(':')
}

fn tests(n: usize) -> String {
    match n {
        1 => "1 test".to_string(),
        n => format!("{n} tests"),
    }
}

/// The sentence for the buyer: what was run and what passed.
fn note(phase: Phase, run: &TestRun, on_original: Option<&TestRun>) -> String {
    let what = match phase {
        Phase::Prototype => "This prototype's code",
        Phase::Final => "The code",
    };
    let caught = on_original.is_some_and(|before| before.problem.is_some() || !before.failed.is_empty());
    match (run.all_passed(), caught) {
        (true, true) => format!(
            "{what} comes with {}, run before sending: they fail on the original code and all pass on the fix.",
            tests(run.total())
        ),
        (true, false) => format!("{what} comes with {}, run before sending: all pass.", tests(run.total())),
        (false, _) if run.problem.is_some() => format!("{what} comes with tests, which we could not run to the end."),
        (false, _) => {
            format!("{what} comes with {}, run before sending: {} pass.", tests(run.total()), run.passed.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::code::runners::Failure;

    fn run(passed: &[&str], failed: &[&str]) -> TestRun {
        TestRun {
            passed: passed.iter().map(|s| s.to_string()).collect(),
            failed: failed.iter().map(|s| Failure { test: s.to_string(), error: "assert 1 == 2".into() }).collect(),
            problem: None,
        }
    }

    #[test]
    fn the_checks_say_what_ran_and_what_passed() {
        assert!(tests_check(&run(&["a", "b"], &[])).passed);
        let partial = tests_check(&run(&["a"], &["b"]));
        assert!(
            !partial.passed && partial.detail.contains("1 of 2 tests pass") && partial.detail.contains("failing: b")
        );
        let broken =
            TestRun { problem: Some("the tests could not be loaded (x):\nE  NameError".into()), ..TestRun::default() };
        assert!(!tests_check(&broken).passed);
        assert!(!tests_check(&TestRun::default()).passed, "no test run is no pass");
        assert!(fix_check(&run(&["a"], &["b"]), &run(&["a", "b"], &[])).passed);
        assert!(!fix_check(&run(&["a", "b"], &[]), &run(&["a", "b"], &[])).passed, "tests that miss the bug");
    }

    #[test]
    fn a_cut_off_test_is_dropped_and_finished_ones_kept() {
        let tests = "import pytest\n\ndef test_a():\n    assert 1\n\ndef test_b():\n    assert f(";
        assert_eq!(drop_unfinished_test(tests, Runner::Python), "import pytest\n\ndef test_a():\n    assert 1");
    }
}
