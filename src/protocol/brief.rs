//! The inbound brief. The platform's pages disagree on names and types, so parsing is lenient
//! (protocol §2): `mode` or `phase`, `final` or `delivery`, an older `task_spec` envelope, numbers
//! as strings, lists as comma strings, unknown string fields kept as context. What we cannot work
//! without is rejected with a precise reason.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

/// The two calls the platform makes per task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Bidding: a real draft the buyer compares with other agents' drafts.
    Prototype,
    /// Delivery (only if we won): the complete deliverable.
    Final,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Prototype => "prototype",
            Phase::Final => "final",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "prototype" | "bidding" | "bid" => Some(Phase::Prototype),
            "final" | "delivery" => Some(Phase::Final),
            _ => None,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a body is not a brief we can work on. Each variant has a stable code for the error body.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(#[source] serde_json::Error),
    #[error("the body must be a JSON object")]
    NotAnObject,
    #[error("the field `{0}` is required")]
    MissingField(&'static str),
    #[error("the field `{field}` must be {expected}")]
    InvalidField { field: &'static str, expected: &'static str },
    #[error("unknown phase {0:?}: expected \"prototype\" or \"final\" (or \"delivery\")")]
    UnknownPhase(String),
    #[error("the X-AITasker-Task-ID header names a different task than the body's task_id")]
    TaskIdMismatch,
}

impl ProtocolError {
    /// The stable machine-readable code used in the `{"error": …}` body and metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::MalformedJson(_) => "malformed_json",
            ProtocolError::NotAnObject => "invalid_brief",
            ProtocolError::MissingField(_) => "missing_field",
            ProtocolError::InvalidField { .. } => "invalid_field",
            ProtocolError::UnknownPhase(_) => "unknown_phase",
            ProtocolError::TaskIdMismatch => "task_id_mismatch",
        }
    }
}

/// One attachment reference. Fetching is a later concern; the names already inform the prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attachment {
    pub filename: String,
    pub url: String,
    pub content_type: String,
}

/// A brief, normalised: every later layer reads this and never the raw JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Brief {
    pub task_id: String,
    pub phase: Phase,
    pub title: String,
    pub description: String,
    pub category: Option<String>,
    pub task_type: Option<String>,
    pub requirements: BTreeMap<String, Value>,
    pub quality_rules: BTreeMap<String, Value>,
    pub budget_usd: Option<f64>,
    pub attachments: Vec<Attachment>,
    /// Unknown top-level string fields (e.g. the unpublished `user_…` field): context for the
    /// model. Fields whose names suggest credentials are never kept.
    pub extra_context: BTreeMap<String, String>,
    /// Async dispatches carry the platform's own limit for the whole task.
    pub execution_timeout_seconds: Option<u64>,
    /// Async dispatch (protocol §7): where to POST the answer, and the key to sign it with.
    pub callback: Option<Callback>,
}

/// Where an async task's answer goes. The secret is per task and never printed.
#[derive(Clone, PartialEq)]
pub struct Callback {
    pub url: url::Url,
    pub secret: String,
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback").field("url", &self.url.as_str()).field("secret", &"***").finish()
    }
}

/// A loosely typed requirement value, read the way a buyer meant it.
#[derive(Debug, Clone, Copy)]
pub struct Requirement<'a>(pub &'a Value);

impl Requirement<'_> {
    /// A count or length: `1500`, `"1500"`, `"1,500 words"`, `"about 300"`.
    pub fn as_count(&self) -> Option<u64> {
        match self.0 {
            Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f.round() as u64)),
            Value::String(s) => {
                let digits: String = s
                    .chars()
                    .skip_while(|c| !c.is_ascii_digit())
                    .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '_')
                    .filter(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            }
            _ => None,
        }
    }

    /// A list: `["a", "b"]`, `"a, b"`, `"a; b"`.
    pub fn as_list(&self) -> Vec<String> {
        match self.0 {
            Value::Array(items) => items.iter().flat_map(|v| Requirement(v).as_list()).collect(),
            Value::String(s) => {
                s.split([',', ';', '\n']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
            }
            Value::Null => Vec::new(),
            other => vec![Requirement(other).as_text()],
        }
    }

    /// Plain text for a prompt: strings as they are, lists joined, objects as `k: v` pairs.
    pub fn as_text(&self) -> String {
        match self.0 {
            Value::Null => String::new(),
            Value::String(s) => s.trim().to_string(),
            Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Array(items) => {
                items.iter().map(|v| Requirement(v).as_text()).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(", ")
            }
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| format!("{}: {}", k.replace('_', " "), Requirement(v).as_text()))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

impl Brief {
    /// The first requirement (or quality rule) present under any of `keys`.
    pub fn requirement(&self, keys: &[&str]) -> Option<Requirement<'_>> {
        keys.iter()
            .find_map(|k| self.requirements.get(*k).or_else(|| self.quality_rules.get(*k)))
            .filter(|v| !v.is_null())
            .map(Requirement)
    }

    /// `task_type`, or `category`, or "task": what to call the work in prose.
    pub fn kind_of_work(&self) -> String {
        self.task_type
            .as_deref()
            .or(self.category.as_deref())
            .map(|s| s.replace(['-', '_'], " "))
            .unwrap_or_else(|| "task".to_string())
    }
}

/// Top-level fields the contract names; every other string field becomes context.
const KNOWN_FIELDS: &[&str] = &[
    "task_id",
    "title",
    "description",
    "category",
    "task_type",
    "requirements",
    "quality_rules",
    "budget_usd",
    "attachments",
    "mode",
    "phase",
    "task_spec",
    "callback_url",
    "callback_secret",
    "execution_timeout_seconds",
];

/// Longest task id we accept: it keys the idempotency cache and appears in logs.
const MAX_TASK_ID_CHARS: usize = 200;

/// Fields of the envelope that say which task, which phase and where its answer goes: in the
/// older `task_spec` form the outer ones win, so a nested field cannot redirect the task the
/// platform dispatched. Each group is taken whole from one level.
const ENVELOPE_GROUPS: &[&[&str]] =
    &[&["task_id"], &["mode", "phase"], &["callback_url", "callback_secret"], &["execution_timeout_seconds"]];

/// The task-id header, when sent, must name the body's task: a body signed for one task and
/// sent under another's id is refused, not guessed at.
pub fn check_task_id_header(header: Option<&[u8]>, brief: &Brief) -> Result<(), ProtocolError> {
    match header {
        None => Ok(()),
        Some(value) if std::str::from_utf8(value).is_ok_and(|id| id.trim() == brief.task_id) => Ok(()),
        Some(_) => Err(ProtocolError::TaskIdMismatch),
    }
}

/// Parse and normalise a request body. Malformed JSON and everything else are distinguished so
/// the caller can answer 400 or 422.
pub fn parse_brief(body: &[u8]) -> Result<Brief, ProtocolError> {
    let value: Value = serde_json::from_slice(body).map_err(ProtocolError::MalformedJson)?;
    let Value::Object(mut fields) = value else {
        return Err(ProtocolError::NotAnObject);
    };
    // The older envelope nests the task under `task_spec`: its content completes the outer
    // fields, but the envelope's task id, phase and callback are the outer ones when given.
    if let Some(spec) = fields.remove("task_spec") {
        let Value::Object(mut spec) = spec else {
            return Err(ProtocolError::InvalidField { field: "task_spec", expected: "an object" });
        };
        for group in ENVELOPE_GROUPS {
            if group.iter().any(|k| fields.contains_key(*k)) {
                for k in *group {
                    spec.remove(*k);
                }
            }
        }
        for (k, v) in fields {
            spec.insert(k, v);
        }
        fields = spec;
    }

    let task_id = required_string(&fields, "task_id")?;
    if task_id.chars().count() > MAX_TASK_ID_CHARS || task_id.chars().any(char::is_control) {
        return Err(ProtocolError::InvalidField {
            field: "task_id",
            expected: "a short identifier without control characters",
        });
    }
    let phase_raw = match optional_string(&fields, "mode")? {
        Some(mode) => mode,
        None => optional_string(&fields, "phase")?.ok_or(ProtocolError::MissingField("mode"))?,
    };
    let phase = Phase::parse(&phase_raw).ok_or(ProtocolError::UnknownPhase(phase_raw))?;

    let title = optional_string(&fields, "title")?.unwrap_or_default();
    let description = optional_string(&fields, "description")?.unwrap_or_default();
    if title.is_empty() && description.is_empty() {
        return Err(ProtocolError::MissingField("description"));
    }

    let brief = Brief {
        task_id,
        phase,
        title,
        description,
        category: optional_string(&fields, "category")?.filter(|s| !s.is_empty()),
        task_type: optional_string(&fields, "task_type")?.filter(|s| !s.is_empty()),
        requirements: optional_object(&fields, "requirements")?,
        quality_rules: optional_object(&fields, "quality_rules")?,
        budget_usd: budget(&fields)?,
        attachments: attachments(&fields)?,
        extra_context: extra_context(&fields),
        callback: callback(&fields)?,
        execution_timeout_seconds: match fields.get("execution_timeout_seconds") {
            None | Some(Value::Null) => None,
            Some(v) => Some(Requirement(v).as_count().ok_or(ProtocolError::InvalidField {
                field: "execution_timeout_seconds",
                expected: "a whole number of seconds",
            })?),
        },
    };
    Ok(brief)
}

fn required_string(fields: &Map<String, Value>, field: &'static str) -> Result<String, ProtocolError> {
    optional_string(fields, field)?.filter(|s| !s.is_empty()).ok_or(ProtocolError::MissingField(field))
}

fn optional_string(fields: &Map<String, Value>, field: &'static str) -> Result<Option<String>, ProtocolError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(ProtocolError::InvalidField { field, expected: "a string" }),
    }
}

fn optional_object(fields: &Map<String, Value>, field: &'static str) -> Result<BTreeMap<String, Value>, ProtocolError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => Ok(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Some(_) => Err(ProtocolError::InvalidField { field, expected: "an object" }),
    }
}

fn budget(fields: &Map<String, Value>) -> Result<Option<f64>, ProtocolError> {
    let err = ProtocolError::InvalidField { field: "budget_usd", expected: "a non-negative number" };
    let amount = match fields.get("budget_usd") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().ok_or(err)?,
        Some(Value::String(s)) => {
            s.trim().trim_start_matches('$').replace(',', "").trim().parse::<f64>().map_err(|_| err)?
        }
        Some(_) => return Err(err),
    };
    if amount.is_finite() && amount >= 0.0 {
        Ok(Some(amount))
    } else {
        Err(ProtocolError::InvalidField { field: "budget_usd", expected: "a non-negative number" })
    }
}

fn attachments(fields: &Map<String, Value>) -> Result<Vec<Attachment>, ProtocolError> {
    let items = match fields.get("attachments") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ProtocolError::InvalidField { field: "attachments", expected: "an array" }),
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(url) => {
                Ok(Attachment { filename: String::new(), url: url.clone(), content_type: String::new() })
            }
            Value::Object(obj) => {
                let text = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or_default().trim().to_string();
                Ok(Attachment { filename: text("filename"), url: text("url"), content_type: text("content_type") })
            }
            _ => Err(ProtocolError::InvalidField { field: "attachments", expected: "an array of objects" }),
        })
        .collect()
}

/// A callback needs a URL and a secret to sign with; a secret alone asks for nothing and is
/// ignored (the answer then goes back synchronously). The URL must be an absolute http(s) URL
/// with a host; which hosts may be called back is the operator's policy, applied by the HTTP
/// layer ([`crate::callback::CallbackPolicy`]).
fn callback(fields: &Map<String, Value>) -> Result<Option<Callback>, ProtocolError> {
    let url = optional_string(fields, "callback_url")?.filter(|s| !s.is_empty());
    let secret = optional_string(fields, "callback_secret")?.filter(|s| !s.is_empty());
    let (url, secret) = match (url, secret) {
        (None, _) => return Ok(None),
        (Some(url), Some(secret)) => (url, secret),
        (Some(_), None) => return Err(ProtocolError::MissingField("callback_secret")),
    };
    let invalid = || ProtocolError::InvalidField { field: "callback_url", expected: "an absolute https URL" };
    let url = url::Url::parse(&url).map_err(|_| invalid())?;
    match url.scheme() {
        "https" | "http" if url.host().is_some() => Ok(Some(Callback { url, secret })),
        _ => Err(invalid()),
    }
}

fn extra_context(fields: &Map<String, Value>) -> BTreeMap<String, String> {
    const CREDENTIAL_HINTS: &[&str] = &["secret", "token", "key", "password", "signature", "auth"];
    fields
        .iter()
        .filter(|(k, _)| !KNOWN_FIELDS.contains(&k.as_str()))
        .filter(|(k, _)| {
            let lower = k.to_ascii_lowercase();
            !CREDENTIAL_HINTS.iter().any(|hint| lower.contains(hint))
        })
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.trim().to_string())))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<Brief, ProtocolError> {
        parse_brief(value.to_string().as_bytes())
    }

    fn minimal() -> Value {
        json!({"task_id": "t-1", "title": "Slogans", "description": "Slogans for a bakery", "mode": "prototype"})
    }

    #[test]
    fn every_fixture_brief_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/briefs");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("fixture briefs") {
            let path = entry.unwrap().path();
            let brief =
                parse_brief(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(brief.phase, Phase::Prototype);
            assert!(!brief.description.is_empty());
            seen += 1;
        }
        assert!(seen >= 12, "expected the shared fixture briefs, found {seen}");
    }

    #[test]
    fn phase_accepts_mode_or_phase_and_delivery_means_final() {
        let mut v = minimal();
        v["mode"] = json!("delivery");
        assert_eq!(parse(v).unwrap().phase, Phase::Final);
        let mut v = minimal();
        v.as_object_mut().unwrap().remove("mode");
        v["phase"] = json!("Final");
        assert_eq!(parse(v).unwrap().phase, Phase::Final);
        let mut v = minimal();
        v["mode"] = json!("rehearsal");
        assert_eq!(parse(v).unwrap_err().code(), "unknown_phase");
    }

    #[test]
    fn missing_and_mistyped_fields_are_named() {
        let mut v = minimal();
        v.as_object_mut().unwrap().remove("task_id");
        assert!(matches!(parse(v).unwrap_err(), ProtocolError::MissingField("task_id")));
        let mut v = minimal();
        v.as_object_mut().unwrap().remove("mode");
        assert!(matches!(parse(v).unwrap_err(), ProtocolError::MissingField("mode")));
        let mut v = minimal();
        v["title"] = json!("");
        v["description"] = json!(null);
        assert!(matches!(parse(v).unwrap_err(), ProtocolError::MissingField("description")));
        let mut v = minimal();
        v["requirements"] = json!("long");
        assert!(matches!(parse(v).unwrap_err(), ProtocolError::InvalidField { field: "requirements", .. }));
        let mut v = minimal();
        v["budget_usd"] = json!(-3);
        assert!(matches!(parse(v).unwrap_err(), ProtocolError::InvalidField { field: "budget_usd", .. }));
        assert_eq!(parse_brief(b"{not json").unwrap_err().code(), "malformed_json");
        assert_eq!(parse_brief(b"[1,2]").unwrap_err().code(), "invalid_brief");
    }

    #[test]
    fn older_task_spec_envelope_is_unwrapped() {
        let brief = parse(json!({
            "task_id": "t-2", "mode": "final",
            "task_spec": {"title": "Blog", "description": "A post", "budget_usd": "25"}
        }))
        .unwrap();
        assert_eq!((brief.title.as_str(), brief.phase, brief.budget_usd), ("Blog", Phase::Final, Some(25.0)));
        // Nested alone, the envelope's fields are read from the spec.
        let nested = parse(json!({"task_spec": {"task_id": "t-3", "phase": "final", "title": "Blog"}})).unwrap();
        assert_eq!((nested.task_id.as_str(), nested.phase), ("t-3", Phase::Final));
    }

    #[test]
    fn the_outer_task_id_phase_and_callback_win_over_task_specs() {
        let brief = parse(json!({
            "task_id": "outer", "phase": "prototype",
            "callback_url": "https://platform.example/cb", "callback_secret": "outer-secret",
            "task_spec": {
                "task_id": "inner", "mode": "final", "title": "Blog",
                "callback_url": "https://attacker.example/cb", "callback_secret": "inner-secret"
            }
        }))
        .unwrap();
        assert_eq!((brief.task_id.as_str(), brief.phase), ("outer", Phase::Prototype));
        let callback = brief.callback.unwrap();
        assert_eq!((callback.url.as_str(), callback.secret.as_str()), ("https://platform.example/cb", "outer-secret"));
        // A callback is one field group: an outer URL is never paired with an inner secret.
        let err = parse(json!({
            "task_id": "outer", "mode": "final", "callback_url": "https://platform.example/cb",
            "task_spec": {"title": "Blog", "callback_secret": "inner-secret"}
        }))
        .unwrap_err();
        assert!(matches!(err, ProtocolError::MissingField("callback_secret")), "{err}");
    }

    #[test]
    fn a_task_id_header_must_name_the_bodys_task() {
        let brief = parse(minimal()).unwrap();
        assert!(check_task_id_header(None, &brief).is_ok());
        assert!(check_task_id_header(Some(b"t-1"), &brief).is_ok());
        assert!(matches!(check_task_id_header(Some(b"t-2"), &brief), Err(ProtocolError::TaskIdMismatch)));
        assert!(matches!(check_task_id_header(Some(b""), &brief), Err(ProtocolError::TaskIdMismatch)));
        assert!(matches!(check_task_id_header(Some(b"\xff"), &brief), Err(ProtocolError::TaskIdMismatch)));
        assert_eq!(ProtocolError::TaskIdMismatch.code(), "task_id_mismatch");
    }

    #[test]
    fn unknown_string_fields_become_context_but_credentials_do_not() {
        let mut v = minimal();
        v["user_notes"] = json!("Keep it short");
        v["callback_secret"] = json!("s3cret");
        v["user_api_token"] = json!("tok");
        v["user_count"] = json!(3);
        let brief = parse(v).unwrap();
        assert_eq!(brief.extra_context.len(), 1);
        assert_eq!(brief.extra_context["user_notes"], "Keep it short");
    }

    #[test]
    fn requirement_values_are_read_leniently() {
        let v =
            json!({"a": 1500, "b": "1,500 words", "c": "about 300", "d": "x, y ;z", "e": ["x", "y"], "f": {"max": 30}});
        let r = |k: &str| Requirement(&v[k]);
        assert_eq!(r("a").as_count(), Some(1500));
        assert_eq!(r("b").as_count(), Some(1500));
        assert_eq!(r("c").as_count(), Some(300));
        assert_eq!(r("d").as_list(), ["x", "y", "z"]);
        assert_eq!(r("e").as_list(), ["x", "y"]);
        assert_eq!(r("f").as_text(), "max: 30");
    }

    #[test]
    fn a_callback_needs_both_fields_and_an_http_url_and_its_secret_never_prints() {
        let with =
            |extra: &str| parse_brief(format!(r#"{{"task_id":"t","mode":"final","title":"T"{extra}}}"#).as_bytes());
        let brief =
            with(r#","callback_url":"https://platform.example/cb?t=1","callback_secret":"s3cr3t-value""#).unwrap();
        let callback = brief.callback.as_ref().unwrap();
        assert_eq!(callback.url.as_str(), "https://platform.example/cb?t=1");
        assert!(!format!("{brief:?}").contains("s3cr3t-value"), "{brief:?}");
        assert!(brief.extra_context.is_empty(), "callback fields are not context: {:?}", brief.extra_context);
        // Which hosts may be called back is the HTTP layer's policy (callback::CallbackPolicy).
        assert!(with(r#","callback_url":"http://127.0.0.1:9/cb","callback_secret":"s""#).unwrap().callback.is_some());
        for bad in [
            r#","callback_url":"ftp://platform.example/cb","callback_secret":"s""#,
            r#","callback_url":"mailto:ops@platform.example","callback_secret":"s""#,
            r#","callback_url":"/relative","callback_secret":"s""#,
            r#","callback_url":"https://platform.example/cb""#,
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
        assert!(with("").unwrap().callback.is_none());
        assert!(with(r#","callback_secret":"s""#).unwrap().callback.is_none(), "nowhere to call back: sync");
    }
}
