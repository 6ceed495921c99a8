//! Code goes out run: through the real pipeline and the real sandbox (bubblewrap, python3 with
//! pytest, node), a stand-in model writes code, tests and repairs in a fixed order, and the
//! response shows what ran and what passed — the failing test quoted back to the model, the
//! repaired code sent, a bug fix's tests failing on the original, an SQL query run on sample rows.
//! Without a sandbox nothing runs and the check says why.

use std::sync::Arc;
use std::time::Instant;

use bidder::config::StrategyConfig;
use bidder::engine::Capability;
use bidder::engine::fake::ScriptedGenerator;
use bidder::pipeline::{PhaseRoutes, Pipeline};
use bidder::protocol::{ExecuteResponse, parse_brief};
use bidder::sandbox::{Availability, CodeExec};

async fn sandbox() -> Availability {
    let availability = Availability::probe(CodeExec::Required, None)
        .await
        .expect("the sandbox must work here: install bubblewrap (apt-get install bubblewrap)");
    let sandbox = availability.sandbox().expect("required means ready");
    for program in ["python3", "node"] {
        assert!(sandbox.interpreter(program).is_some(), "{program} must be installed (see .ci/run)");
    }
    availability
}

async fn answer(brief: serde_json::Value, replies: &[&str], code_exec: Availability) -> (ExecuteResponse, Vec<String>) {
    let brief = parse_brief(brief.to_string().as_bytes()).unwrap();
    let model = ScriptedGenerator::new(Capability::Prose, replies.iter().copied());
    let strategy = StrategyConfig { code_exec, ..StrategyConfig::default() };
    let pipeline = Pipeline::new(PhaseRoutes::single(Arc::new(model.clone())), strategy);
    let response = pipeline.execute(&brief, Instant::now()).await.unwrap();
    (response, model.prompts())
}

fn check<'r>(response: &'r ExecuteResponse, name: &str) -> &'r bidder::protocol::Check {
    let checks = &response.metadata.checks;
    checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} in {checks:?}"))
}

fn duration_brief() -> serde_json::Value {
    serde_json::json!({
        "task_id": "00000000-0000-0000-0000-0000000c0de1",
        "title": "Duration parser",
        "description": "Write a Python function parse_duration(text) that turns '1h30m' into 5400 seconds and '2H' into 7200; an empty string raises ValueError.",
        "category": "programming-automation",
        "task_type": "function",
        "requirements": {"language": "python"},
        "budget_usd": 20,
        "mode": "final"
    })
}

const BUGGY_DURATION: &str = "import re\n\n\ndef parse_duration(text):\n    parts = re.findall(r\"(\\d+)([hms])\", text)\n    if not parts:\n        raise ValueError(\"no duration in \" + repr(text))\n    return sum(int(n) * {\"h\": 3600, \"m\": 60, \"s\": 1}[u] for n, u in parts)\n```";
const DURATION_TESTS: &str = "hours_and_minutes():\n    assert parse_duration(\"1h30m\") == 5400\n\n\ndef test_upper_case_units():\n    assert parse_duration(\"2H\") == 7200\n\n\ndef test_empty_is_an_error():\n    with pytest.raises(ValueError):\n        parse_duration(\"\")\n```";
const FIXED_DURATION: &str = "import re\n\n\ndef parse_duration(text):\n    parts = re.findall(r\"(\\d+)([hms])\", text.lower())\n    if not parts:\n        raise ValueError(\"no duration in \" + repr(text))\n    return sum(int(n) * {\"h\": 3600, \"m\": 60, \"s\": 1}[u] for n, u in parts)\n```";

#[tokio::test]
async fn a_failing_test_is_quoted_back_and_the_repaired_code_is_sent_with_its_tests() {
    let (response, prompts) =
        answer(duration_brief(), &[BUGGY_DURATION, DURATION_TESTS, FIXED_DURATION], sandbox().await).await;
    let repair = prompts.get(2).expect("a repair was asked for");
    assert!(repair.contains("test_upper_case_units") && repair.contains("7200"), "the failure is quoted: {repair}");
    let tests = check(&response, "code:tests_passed");
    assert!(tests.passed && tests.detail.contains("3 of 3"), "{tests:?}");
    assert!(response.output.contains("text.lower()"), "the repaired code is sent:\n{}", response.output);
    assert!(response.output.contains("## Tests") && response.output.contains("all 3 pass"), "{}", response.output);
    let files: Vec<&str> = response.artifacts.iter().filter_map(|a| a.filename.as_deref()).collect();
    assert!(
        files.iter().any(|f| f.starts_with("test_") && f.ends_with(".py")),
        "the tests go out as a file: {files:?}"
    );
    assert!(
        response.agent_message.contains("3 tests") && response.agent_message.contains("all pass"),
        "{}",
        response.agent_message
    );
}

/// The brief's own examples run as tests: they lead the failures a repair is shown, and a model
/// test that expects another value for the same call, or one that asserts nothing, is cut out.
#[tokio::test]
async fn the_briefs_examples_are_tests_and_overrule_the_models() {
    let mut brief = duration_brief();
    brief["description"] = serde_json::json!(
        "Write a Python function parse_duration(text) that turns durations into seconds:\n\n\
         parse_duration(\"1h30m\") == 5400\nparse_duration(\"2H\") == 7200\n\nAn empty string raises ValueError."
    );
    let model_tests = "upper_case():\n    assert parse_duration(\"2H\") == 720\n\n\ndef test_prints():\n    print(parse_duration(\"1h\"))\n\n\n\
                       def test_empty_is_an_error():\n    with pytest.raises(ValueError):\n        parse_duration(\"\")\n```";
    let (response, prompts) = answer(brief, &[BUGGY_DURATION, model_tests, FIXED_DURATION], sandbox().await).await;
    let repair = prompts.get(2).expect("a repair was asked for");
    assert!(
        repair.contains("test_brief_example_2") && repair.contains("7200"),
        "the example's failure leads: {repair}"
    );
    let tests = check(&response, "code:tests_passed");
    assert!(tests.passed && tests.detail.contains("3 of 3"), "{tests:?}");
    let section = &response.output[response.output.find("## Tests").expect("a tests section")..];
    assert!(section.contains("def test_brief_example_1():\n    assert parse_duration(\"1h30m\") == 5400"), "{section}");
    assert!(!section.contains("== 720\n") && !section.contains("test_prints"), "{section}");
}

/// Tests the model wrote into the code are taken out of it and run as the tests: the delivered
/// code does not run them on import, and no second call is spent on new ones.
#[tokio::test]
async fn tests_written_into_the_code_become_the_tests() {
    let with_inline = FIXED_DURATION.replace(
        "\n```",
        "\n\n# Check it\ndef test_upper_case():\n    assert parse_duration(\"2H\") == 7200\n\n\ntest_upper_case()\n```",
    );
    let (response, prompts) = answer(duration_brief(), &[&with_inline], sandbox().await).await;
    assert_eq!(prompts.len(), 1, "no call for tests: {prompts:#?}");
    let tests = check(&response, "code:tests_passed");
    assert!(tests.passed && tests.detail.contains("1 of 1"), "{tests:?}");
    let code = response
        .artifacts
        .iter()
        .find(|a| a.filename.as_deref() == Some("parse_duration.py"))
        .expect("named for its function");
    assert!(!code.content.contains("test_upper_case"), "{}", code.content);
}

/// Tests that cannot even load, while the code loads on its own, are the tests' fault: they are
/// written once more, and if they still cannot run none are sent, and the code is not rewritten.
#[tokio::test]
async fn broken_tests_are_rewritten_once_and_never_steer_the_code() {
    let broken = "broken(:\n    assert <div/>\n```";
    let (response, prompts) = answer(duration_brief(), &[FIXED_DURATION, broken, broken], sandbox().await).await;
    assert_eq!(prompts.len(), 3, "the code, the tests, the tests again — no repair: {prompts:#?}");
    let tests = check(&response, "code:tests_passed");
    assert!(!tests.passed && tests.detail.contains("none are included"), "{tests:?}");
    assert!(!response.output.contains("## Tests"), "{}", response.output);
    assert!(response.output.contains("text.lower()"), "the code is as written:\n{}", response.output);
}

#[tokio::test]
async fn code_that_never_passes_is_sent_with_the_failures_said_not_hidden() {
    let replies = [BUGGY_DURATION, DURATION_TESTS, BUGGY_DURATION, BUGGY_DURATION, BUGGY_DURATION];
    let (response, _) = answer(duration_brief(), &replies, sandbox().await).await;
    let tests = check(&response, "code:tests_passed");
    assert!(
        !tests.passed && tests.detail.contains("2 of 3") && tests.detail.contains("test_upper_case_units"),
        "{tests:?}"
    );
    assert!(response.output.contains("still failing: `test_upper_case_units`"), "{}", response.output);
    assert!(response.agent_message.contains("Not yet right"), "{}", response.agent_message);
}

#[tokio::test]
async fn without_a_sandbox_nothing_runs_and_the_check_says_why() {
    let missing = Availability::probe(CodeExec::Auto, Some(std::path::Path::new("/nonexistent/bwrap"))).await.unwrap();
    assert!(missing.sandbox().is_none());
    let (response, prompts) = answer(duration_brief(), &[FIXED_DURATION], missing).await;
    let tests = check(&response, "code:tests_passed");
    assert!(!tests.passed && tests.detail.contains("not run") && tests.detail.contains("bubblewrap"), "{tests:?}");
    assert_eq!(prompts.len(), 1, "no tests are asked for when they cannot run");
    assert!(!response.output.contains("## Tests"), "{}", response.output);
}

#[tokio::test]
async fn a_javascript_fix_is_shown_failing_on_the_original_and_passing_on_the_fix() {
    let findings =
        " The timer is declared inside the returned function, so clearTimeout never clears the earlier timer.\n";
    let tests = "calls within the wait collapse into one', async () => {\n  let calls = 0;\n  const d = debounce(() => { calls += 1; }, 20);\n  d(); d(); d();\n  await new Promise((r) => setTimeout(r, 80));\n  assert.strictEqual(calls, 1);\n});\n```";
    let (response, _) = answer(debounce_brief(), &[findings, FIXED_DEBOUNCE, tests], sandbox().await).await;
    let verified = check(&response, "code:fix_verified");
    assert!(verified.passed, "{verified:?}");
    assert!(check(&response, "code:tests_passed").passed);
    assert!(response.output.contains("On the original code 1 of them fail"), "{}", response.output);
    assert!(
        response.output.contains("module.exports = { debounce }"),
        "the tests can load the fix:\n{}",
        response.output
    );
}

#[tokio::test]
async fn an_sql_query_is_run_on_sample_rows_and_an_error_is_repaired() {
    let brief = serde_json::json!({
        "task_id": "00000000-0000-0000-0000-0000000c0de3",
        "title": "Top customers query",
        "description": "Tables: customers(id, name) and orders(id, customer_id, amount). Write an SQL query for each customer's total order amount, highest first.",
        "category": "programming-automation",
        "task_type": "sql",
        "requirements": {"language": "sql"},
        "budget_usd": 20,
        "mode": "final"
    });
    let broken = "SELECT c.name, SUM(o.amount) AS total FROM customers c JOIN orders o ON o.customer_id = c.idd GROUP BY c.name ORDER BY total DESC;\n```";
    let sample = " customers (id INTEGER PRIMARY KEY, name TEXT);\nCREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL);\nINSERT INTO customers VALUES (1, 'Ana'), (2, 'Ben'), (3, 'Cy');\nINSERT INTO orders VALUES (1, 1, 10), (2, 1, 5), (3, 2, 7);\n```";
    let fixed = "SELECT c.name, SUM(o.amount) AS total FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY total DESC;\n```";
    let (response, prompts) = answer(brief, &[broken, sample, fixed], sandbox().await).await;
    assert!(prompts[2].contains("no such column"), "SQLite's error is quoted: {}", prompts[2]);
    let runs = check(&response, "code:sql_runs");
    assert!(runs.passed && runs.detail.contains("2 rows"), "{runs:?}");
    assert!(response.output.contains("| Ana | 15 |") && !response.output.contains("c.idd"), "{}", response.output);
    assert!(response.artifacts.iter().any(|a| a.filename.as_deref() == Some("sample_data.sql")));
}

/// Example calls the model leaves at the top level would run, and here raise, whenever the tests
/// import the code: they go under a main guard, where running the file still runs them.
#[tokio::test]
async fn example_calls_at_the_top_level_do_not_stop_the_tests_loading() {
    let with_examples = FIXED_DURATION
        .replace("\n```", "\n\n# Example usage\nprint(parse_duration(\"1h30m\"))\nprint(parse_duration(\"90\"))\n```");
    let (response, _) = answer(duration_brief(), &[&with_examples, DURATION_TESTS], sandbox().await).await;
    let tests = check(&response, "code:tests_passed");
    assert!(tests.passed && tests.detail.contains("3 of 3"), "{tests:?}");
    let code = response.artifacts.iter().find(|a| a.filename.as_deref() == Some("parse_duration.py")).unwrap();
    assert!(
        code.content
            .contains("if __name__ == \"__main__\":\n    # Example usage\n    print(parse_duration(\"1h30m\"))"),
        "{}",
        code.content
    );
}

const FIXED_DEBOUNCE: &str = "function debounce(fn, wait) {\n  let timer;\n  return function (...args) {\n    clearTimeout(timer);\n    timer = setTimeout(() => fn.apply(this, args), wait);\n  };\n}\n```";

fn debounce_brief() -> serde_json::Value {
    serde_json::json!({
        "task_id": "00000000-0000-0000-0000-0000000c0de4",
        "title": "Fix my debounce",
        "description": "My debounce fires on every call instead of once. Please fix it.\n\n```javascript\nfunction debounce(fn, wait) {\n  return function (...args) {\n    let timer;\n    clearTimeout(timer);\n    timer = setTimeout(() => fn.apply(this, args), wait);\n  };\n}\n```",
        "category": "programming-automation",
        "task_type": "bug-fix",
        "requirements": {"language": "javascript"},
        "budget_usd": 20,
        "mode": "final"
    })
}

/// Models write jest whatever they are told: its stand-ins and fake timers run as node:test's
/// own, and a test at fault itself (a plain function read as a mock) is left out, not sent.
#[tokio::test]
async fn jest_style_tests_run_under_node_test_and_a_test_at_fault_is_left_out() {
    let findings = " The timer is declared inside the returned function, so nothing is ever cleared.\n";
    let tests = "collapses calls with fake timers', () => {\n  jest.useFakeTimers();\n  const f = jest.fn();\n  const d = debounce(f, 300);\n  d(1); d(2);\n  jest.advanceTimersByTime(300);\n  assert.strictEqual(f.mock.calls.length, 1);\n  jest.useRealTimers();\n});\n\ntest('reads a plain function as a mock', () => {\n  const editor = { save: debounce(function () {}, 10) };\n  editor.save();\n  assert.strictEqual(editor.save.mock.calls.length, 1);\n});\n```";
    let (response, prompts) = answer(debounce_brief(), &[findings, FIXED_DEBOUNCE, tests], sandbox().await).await;
    assert_eq!(prompts.len(), 3, "no repair of code that passes its sound tests: {prompts:#?}");
    let passed = check(&response, "code:tests_passed");
    assert!(passed.passed && passed.detail.contains("1 of 1"), "{passed:?}");
    assert!(check(&response, "code:fix_verified").passed);
    let sent =
        response.artifacts.iter().find(|a| a.filename.as_deref().is_some_and(|f| f.ends_with(".test.js"))).unwrap();
    assert!(sent.content.contains("mock.fn()") && !sent.content.contains("jest"), "{}", sent.content);
    assert!(!sent.content.contains("reads a plain function as a mock"), "{}", sent.content);
}

/// A "top 5" brief's query must stop at 5 rows: one that returns every row is a failed check,
/// sent back to the model with the LIMIT it needs.
#[tokio::test]
async fn a_top_n_query_without_its_limit_is_repaired() {
    let brief = serde_json::json!({
        "task_id": "00000000-0000-0000-0000-0000000c0de5",
        "title": "Top customers query",
        "description": "Tables: customers(id, name) and orders(id, customer_id, amount). Write an SQLite query for the top 2 customers by total order amount, highest first.",
        "category": "programming-automation",
        "task_type": "sql",
        "requirements": {"language": "sql"},
        "budget_usd": 20,
        "mode": "final"
    });
    let unlimited = "SELECT c.name, SUM(o.amount) AS total FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id ORDER BY total DESC;\n```";
    let sample = " customers (id INTEGER PRIMARY KEY, name TEXT);\nCREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL);\nINSERT INTO customers VALUES (1, 'Ana'), (2, 'Ben'), (3, 'Cy');\nINSERT INTO orders VALUES (1, 1, 10), (2, 1, 5), (3, 2, 7), (4, 3, 1);\n```";
    let limited = "SELECT c.name, SUM(o.amount) AS total FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id ORDER BY total DESC\nLIMIT 2;\n```";
    let (response, prompts) = answer(brief, &[unlimited, sample, limited], sandbox().await).await;
    assert!(prompts[2].contains("LIMIT 2"), "the missing limit is named: {}", prompts[2]);
    let limit = check(&response, "code:sql_row_limit");
    assert!(limit.passed, "{limit:?}");
    assert!(check(&response, "code:sql_runs").detail.contains("2 rows"));
    assert!(response.output.contains("LIMIT 2") && !response.output.contains("| Cy |"), "{}", response.output);
}

/// A query file that builds and fills its own tables is run as it is: no call for sample data,
/// and the query goes out on its own with the data beside it as the sample.
#[tokio::test]
async fn an_sql_file_with_its_own_test_data_is_run_on_it_and_split() {
    let brief = serde_json::json!({
        "task_id": "00000000-0000-0000-0000-0000000c0de6",
        "title": "Customer totals query",
        "description": "Tables: customers(id, name) and orders(id, customer_id, amount). Write an SQLite query for each customer's total, highest first, with a bit of test data.",
        "category": "programming-automation",
        "task_type": "sql",
        "requirements": {"language": "sql"},
        "budget_usd": 20,
        "mode": "final"
    });
    let file = "-- Test data\nCREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);\nCREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL);\nINSERT INTO customers VALUES (1, 'Ana'), (2, 'Ben');\nINSERT INTO orders VALUES (1, 1, 10), (2, 1, 5), (3, 2, 7);\n\n-- The query\nSELECT c.name, SUM(o.amount) AS total FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id ORDER BY total DESC;\n```";
    let (response, prompts) = answer(brief, &[file], sandbox().await).await;
    assert_eq!(prompts.len(), 1, "its own data is used: {prompts:#?}");
    assert!(check(&response, "code:sql_runs").detail.contains("2 rows"));
    let query = response
        .artifacts
        .iter()
        .find(|a| a.filename.as_deref().is_some_and(|f| f != "sample_data.sql" && f.ends_with(".sql")))
        .unwrap();
    assert!(
        query.content.starts_with("-- The query\nSELECT") && !query.content.contains("INSERT"),
        "{}",
        query.content
    );
    let sample = response.artifacts.iter().find(|a| a.filename.as_deref() == Some("sample_data.sql")).unwrap();
    assert!(sample.content.contains("INSERT INTO orders"), "{}", sample.content);
    assert!(response.output.contains("| Ana | 15 |"), "{}", response.output);
}
