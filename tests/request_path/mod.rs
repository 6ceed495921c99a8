//! The request path's invariants, checked on one raw request: authentication (protocol §3),
//! parsing and normalisation (§2), planning, the bid, and the data strategy's reading of a CSV
//! table in the description — everything `/execute` does before it asks the model.
//!
//! Shared, not copied: the `request_path` fuzz target (`fuzz/`, nightly and cargo-fuzz) includes
//! this file, and so does `tests/request_path_regressions.rs`, which runs the same checks on the
//! fixture briefs and on every input the fuzzer ever crashed on, under `cargo test`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};
use bidder::config::{AuthConfig, Secret, StrategyConfig};
use bidder::http::auth::{self, AuthError};
use bidder::protocol::{Brief, Phase, ProtocolError, Requirement, check_task_id_header, parse_brief};
use bidder::strategy::requirements::{Requirements, TaskFamily};
use bidder::strategy::{self, checks, data, pricing};
use serde_json::Value;

/// The agent's configured key and its two signing secrets (pending and current, protocol §3).
pub const KEY: &str = "ait_fuzz_key";
pub const SECRETS: [&str; 2] = ["pending-secret", "current-secret"];
/// When every request is checked, in unix seconds.
pub const NOW_SECS: u64 = 1_800_000_000;
const TOLERANCE_SECS: u64 = 300;

/// One request as it reaches `/execute`: its raw header values (`None`: not sent) and body.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    pub key: Option<Vec<u8>>,
    pub signature: Option<Vec<u8>>,
    pub timestamp: Option<Vec<u8>>,
    pub task_id: Option<Vec<u8>>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// `body` as the platform sends it: the right key, a fresh timestamp, signed with `secret`.
    pub fn signed(body: &[u8], secret: &str) -> Self {
        Self {
            key: Some(KEY.into()),
            signature: Some(auth::sign(secret, body).into_bytes()),
            timestamp: Some(NOW_SECS.to_string().into_bytes()),
            task_id: None,
            body: body.to_vec(),
        }
    }

    /// The headers an HTTP server would hand us: a value that is not a valid header value
    /// (a control character, say) never gets this far, so it is left out.
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (auth::KEY_HEADER, &self.key),
            (auth::SIGNATURE_HEADER, &self.signature),
            (auth::TIMESTAMP_HEADER, &self.timestamp),
            (auth::TASK_ID_HEADER, &self.task_id),
        ] {
            if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_bytes(v).ok()) {
                headers.insert(name, value);
            }
        }
        headers
    }
}

/// Check every invariant of the request path on `request`; panics on the first one broken.
pub fn check(request: &RawRequest) {
    check_auth(&request.headers(), &request.body);
    check_parse(&request.body);
    check_task_id_header_binding(&request.headers(), &request.body);
    // Briefs carry CSV inline: the table reader must cope with any text, not only descriptions.
    check_table(&String::from_utf8_lossy(&request.body));
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

fn configs() -> [(&'static str, AuthConfig); 4] {
    let key = || Some(Secret::new(KEY));
    let secrets = || SECRETS.iter().map(|s| Secret::new(*s)).collect::<Vec<_>>();
    let tolerance = Duration::from_secs(TOLERANCE_SECS);
    [
        ("key and secrets", AuthConfig { api_key: key(), signing_secrets: secrets(), timestamp_tolerance: tolerance }),
        ("secrets only", AuthConfig { api_key: None, signing_secrets: secrets(), timestamp_tolerance: tolerance }),
        ("key only", AuthConfig { api_key: key(), signing_secrets: vec![], timestamp_tolerance: tolerance }),
        ("open", AuthConfig::default()),
    ]
}

/// Authentication accepts exactly what protocol §3 accepts, restated here independently of
/// `auth.rs`, and never panics on any header bytes.
fn check_auth(headers: &HeaderMap, body: &[u8]) {
    let mut without_task_id = headers.clone();
    without_task_id.remove(auth::TASK_ID_HEADER);
    for (name, config) in configs() {
        let verdict = auth::verify_request(&config, headers, body, now());
        assert_eq!(verdict.is_ok(), accepted(&config, headers, body), "{name}: verify_request said {verdict:?}");
        assert_eq!(verdict, auth::verify_request(&config, headers, body, now()), "{name}: not deterministic");
        assert_eq!(
            verdict,
            auth::verify_request(&config, &without_task_id, body, now()),
            "{name}: the task-id header must not change the verdict"
        );
        if config.api_key.is_some() {
            match headers.get(auth::KEY_HEADER) {
                None => assert_eq!(verdict, Err(AuthError::MissingKey), "{name}"),
                Some(given) if given.as_bytes() != KEY.as_bytes() => {
                    assert_eq!(verdict, Err(AuthError::WrongKey), "{name}: a wrong key verified")
                }
                Some(_) => {}
            }
        }
        if config.is_open() {
            assert_eq!(verdict, Ok(()), "an open agent refused a request");
        }
        if verdict.is_ok() && !config.signing_secrets.is_empty() {
            // The signature covers every byte of the body, and the timestamp ages.
            let mut tampered = body.to_vec();
            match tampered.first_mut() {
                Some(first) => *first ^= 0x01,
                None => tampered.push(b' '),
            }
            assert_eq!(
                auth::verify_request(&config, headers, &tampered, now()),
                Err(AuthError::BadSignature),
                "{name}: a tampered body verified"
            );
            let later = now() + Duration::from_secs(2 * TOLERANCE_SECS + 1);
            assert_eq!(
                auth::verify_request(&config, headers, body, later),
                Err(AuthError::StaleTimestamp),
                "{name}: a stale timestamp verified"
            );
        }
    }
}

/// The task-id header binds a body to its task: absent or naming the body's own task id it is
/// accepted, naming anything else it is refused.
fn check_task_id_header_binding(headers: &HeaderMap, body: &[u8]) {
    let Ok(brief) = parse_brief(body) else { return };
    assert!(check_task_id_header(None, &brief).is_ok(), "a request without the header was refused");
    assert!(
        check_task_id_header(Some(brief.task_id.as_bytes()), &brief).is_ok(),
        "the platform's own header (the body's task id) was refused"
    );
    if let Some(header) = headers.get(auth::TASK_ID_HEADER) {
        let names_the_task = std::str::from_utf8(header.as_bytes()).is_ok_and(|h| h.trim() == brief.task_id);
        let verdict = check_task_id_header(Some(header.as_bytes()), &brief);
        assert_eq!(verdict.is_ok(), names_the_task, "task-id header {header:?} for task {:?}", brief.task_id);
    }
}

/// Protocol §3: the key byte for byte; a timestamp in unix seconds within the window; a hex
/// HMAC-SHA256 of the body (either case, `sha256=` prefix tolerated) under any secret.
fn accepted(config: &AuthConfig, headers: &HeaderMap, body: &[u8]) -> bool {
    let key_ok = config
        .api_key
        .as_ref()
        .is_none_or(|key| headers.get(auth::KEY_HEADER).is_some_and(|v| v.as_bytes() == key.expose().as_bytes()));
    let fresh = || {
        headers
            .get(auth::TIMESTAMP_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .is_some_and(|ts| (i128::from(ts) - i128::from(NOW_SECS)).unsigned_abs() <= u128::from(TOLERANCE_SECS))
    };
    let signed = || {
        let Some(text) = headers.get(auth::SIGNATURE_HEADER).and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        else {
            return false;
        };
        let text = text.trim();
        let hex = text.strip_prefix("sha256=").or_else(|| text.strip_prefix("SHA256=")).unwrap_or(text);
        config.signing_secrets.iter().any(|s| hex.eq_ignore_ascii_case(&auth::sign(s.expose(), body)))
    };
    key_ok && (config.signing_secrets.is_empty() || (fresh() && signed()))
}

/// Parsing: malformed JSON is exactly what serde rejects (400), anything else a named 422 or a
/// brief whose fields hold what the rest of the agent relies on; then normalisation.
fn check_parse(body: &[u8]) {
    let parsed = parse_brief(body);
    let json_ok = serde_json::from_slice::<Value>(body).is_ok();
    match &parsed {
        Err(ProtocolError::MalformedJson(_)) => assert!(!json_ok, "valid JSON was called malformed"),
        Err(e) => {
            assert!(json_ok, "malformed JSON was not called malformed: {e}");
            assert!(["invalid_brief", "missing_field", "invalid_field", "unknown_phase"].contains(&e.code()), "{e}");
        }
        Ok(_) => assert!(json_ok),
    }
    match (&parsed, parse_brief(body)) {
        (Ok(a), Ok(b)) => assert_eq!(a, &b, "parse_brief is not deterministic"),
        (Err(a), Err(b)) => assert_eq!(a.code(), b.code(), "parse_brief is not deterministic"),
        (a, b) => panic!("parse_brief is not deterministic: {a:?} then {b:?}"),
    }
    if let Ok(brief) = parsed {
        check_brief(&brief);
        check_normalise(&brief);
    }
}

fn trimmed(s: &str) -> bool {
    s.trim() == s
}

fn check_brief(brief: &Brief) {
    let id = &brief.task_id;
    assert!(!id.is_empty(), "a brief with an empty task_id");
    assert!(trimmed(id) && id.chars().count() <= 200 && !id.chars().any(char::is_control), "task_id {id:?}");
    assert!(!(brief.title.is_empty() && brief.description.is_empty()), "neither title nor description");
    assert!(trimmed(&brief.title) && trimmed(&brief.description));
    for slug in [&brief.category, &brief.task_type].into_iter().flatten() {
        assert!(!slug.is_empty() && trimmed(slug), "slug {slug:?}");
    }
    if let Some(budget) = brief.budget_usd {
        assert!(budget.is_finite() && budget >= 0.0, "budget {budget}");
    }
    for (key, value) in &brief.extra_context {
        let lower = key.to_ascii_lowercase();
        assert!(
            !["secret", "token", "key", "password", "signature", "auth"].iter().any(|h| lower.contains(h)),
            "a credential-like field {key:?} was kept as context"
        );
        assert!(!value.is_empty() && trimmed(value), "context {key:?}: {value:?}");
    }
    for a in &brief.attachments {
        assert!(trimmed(&a.filename) && trimmed(&a.url) && trimmed(&a.content_type));
    }
}

fn check_normalise(brief: &Brief) {
    let kind = brief.kind_of_work();
    assert!(!kind.is_empty() && !kind.contains(['-', '_']), "kind_of_work {kind:?}");
    for (key, value) in brief.requirements.iter().chain(&brief.quality_rules) {
        check_requirement(value);
        let found = brief.requirement(&[key.as_str()]).map(|r| r.0);
        assert!(found.is_none_or(|v| !v.is_null()), "{key:?}: a null requirement");
        if let Some(own) = brief.requirements.get(key).filter(|v| !v.is_null()) {
            assert_eq!(found, Some(own), "{key:?}: the requirement itself comes first");
        }
    }

    let requirements = Requirements::from_brief(brief);
    assert_eq!(requirements, Requirements::from_brief(brief), "Requirements::from_brief is not deterministic");
    assert!(requirements.target_words != Some(0));
    let named = |kind: &str| kind.chars().any(char::is_alphanumeric);
    assert!(requirements.items.iter().all(|i| i.count > 0 && named(&i.kind)), "{:?}", requirements.items);

    let config = StrategyConfig::default();
    let plan = strategy::plan(brief, &config);
    assert_eq!(plan, strategy::plan(brief, &config), "plan is not deterministic");
    assert_eq!(plan.requirements, requirements);
    let (deadline, token_cap) = match brief.phase {
        Phase::Prototype => (config.prototype_deadline, 1024),
        Phase::Final => (config.final_deadline, 3072),
    };
    assert!(plan.time_budget <= deadline, "time budget {:?}", plan.time_budget);
    assert!(plan.max_new_tokens <= token_cap, "{} new tokens", plan.max_new_tokens);
    match (&plan.wordmark, requirements.family) {
        (Some(mark), TaskFamily::Logo) => {
            for svg in std::iter::once(&mark.svg).chain(mark.variants.iter().map(|(_, svg)| svg)) {
                checks::svg_document(svg).unwrap_or_else(|e| panic!("the wordmark is not a valid SVG: {e}\n{svg}"));
            }
        }
        (None, family) => assert_ne!(family, TaskFamily::Logo, "a logo brief without a wordmark"),
        (Some(_), family) => panic!("a wordmark for a {family:?} brief"),
    }
    if requirements.family == TaskFamily::Data {
        assert_eq!(plan.analysis, data::find_table(&brief.description).map(|t| data::analyse(&t)));
    } else {
        assert_eq!(plan.analysis, None);
    }
    check_table(&brief.description);

    let bid = pricing::bid_price_usd(brief.budget_usd, config.bid_fraction, plan.size_words());
    assert!(
        bid.is_finite() && bid >= 0.0 && bid <= brief.budget_usd.unwrap_or(0.0),
        "bid {bid} for {:?}",
        brief.budget_usd
    );
}

/// The lenient readings of one requirement value, on every value nested in it.
fn check_requirement(value: &Value) {
    let r = Requirement(value);
    let count = r.as_count();
    if let Some(n) = value.as_u64() {
        assert_eq!(count, Some(n));
    }
    let list = r.as_list();
    let text = r.as_text();
    match value {
        Value::String(s) => {
            assert_eq!(text, s.trim());
            for item in &list {
                assert!(!item.is_empty() && trimmed(item) && !item.contains([',', ';', '\n']), "list item {item:?}");
            }
        }
        Value::Null => assert!(list.is_empty() && text.is_empty() && count.is_none()),
        Value::Array(items) => {
            let flattened: Vec<String> = items.iter().flat_map(|v| Requirement(v).as_list()).collect();
            assert_eq!(list, flattened);
            items.iter().for_each(check_requirement);
        }
        Value::Object(map) => {
            assert_eq!(list, [text]);
            map.values().for_each(check_requirement);
        }
        Value::Bool(_) | Value::Number(_) => assert_eq!(list, [text]),
    }
}

/// A CSV table found in `text` is rectangular, and analysing or cleaning it neither panics nor
/// invents rows or columns.
fn check_table(text: &str) {
    let Some(table) = data::find_table(text) else { return };
    let width = table.headers.len();
    assert!(width >= 2 && table.rows.len() >= 2, "{table:?}");
    assert!(table.rows.iter().all(|r| r.len() == width), "a ragged table: {table:?}");
    let analysis = data::analyse(&table);
    assert_eq!(analysis, data::analyse(&table), "analyse is not deterministic");
    assert!(data::numbers_check(&analysis.tables, &analysis, text).passed);
    let (cleaned, changes) = data::clean_table(&table);
    assert_eq!(cleaned.headers, table.headers);
    assert!(cleaned.rows.len() <= table.rows.len() && !changes.is_empty());
    assert!(cleaned.rows.iter().all(|r| r.len() == width));
}
