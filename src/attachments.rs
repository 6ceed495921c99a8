//! Attachments a brief links to (protocol §2: `{filename, url, content_type}`, a signed HTTPS link
//! valid about an hour), fetched as text for the prompt. This module owns everything between the
//! link and the text: which files are worth fetching (text-like ones only), which addresses may be
//! contacted, and how much time and memory a brief may make us spend on them.
//!
//! The links come from whoever wrote the brief, so every fetch is a request this machine makes on
//! a stranger's behalf. The guard against server-side request forgery is therefore strict: only
//! `https`, and never an address that is not publicly routable — checked on the literal in the
//! URL, on every address a name resolves to (in the resolver the connection then uses, so a name
//! cannot resolve to a public address for the check and a private one for the connection), and
//! again on every redirect. Hosts named in [`AttachmentPolicy::allow_hosts`] are exempt, and may
//! use plain `http`.
//!
//! Nothing here fails a brief: a file that cannot be used becomes one buyer-readable sentence in
//! [`AttachmentReport::failures`], and the work goes on without it. Signed links carry their
//! credentials in the query string, so neither those sentences nor the logs ever contain a URL.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::LOCATION;
use reqwest::{Client, Response, Url};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::egress::{self, AllowList, Guard, Refusal};
use crate::protocol::Attachment;

/// Redirects followed per file; each one is checked like the original link.
const MAX_REDIRECTS: usize = 3;

/// How much of a brief's attachments we fetch, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentPolicy {
    /// Largest body read per file, counted while it streams in.
    pub max_bytes: u64,
    /// Time for fetching all of a brief's attachments together.
    pub timeout: Duration,
    /// Files fetched per brief; the rest are noted and left out.
    pub max_files: usize,
    /// Origins exempt from the private-address guard (plain `http` only where an entry says
    /// so): a storage service on the local network, or the tests' local server.
    pub allow: AllowList,
}

impl Default for AttachmentPolicy {
    fn default() -> Self {
        Self { max_bytes: 2 * 1024 * 1024, timeout: Duration::from_secs(10), max_files: 5, allow: AllowList::default() }
    }
}

/// One attachment, fetched and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedAttachment {
    /// The brief's file name (or the link's last path segment when the brief gave none).
    pub filename: String,
    /// The media type of the kind of text it is, e.g. `text/csv`.
    pub content_type: String,
    pub text: String,
}

/// What came of a brief's attachments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachmentReport {
    /// The files we could use, in the brief's order.
    pub fetched: Vec<FetchedAttachment>,
    /// One sentence per file we could not use, fit to show the buyer; never a URL.
    pub failures: Vec<String>,
}

/// Why one attachment was not used. The `Display` of the fetch failures completes the sentence
/// "`<file>` could not be fetched (…)", so it says what happened in the buyer's terms; the
/// sources (reqwest errors, stripped of their URL) are for the logs.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("it is not a text file")]
    NotText,
    #[error("it is not UTF-8 text")]
    NotUtf8,
    #[error("only the first {limit} attachments are read")]
    TooMany { limit: usize },
    #[error("the link is not a valid web address")]
    InvalidUrl,
    #[error("only https links are fetched")]
    Scheme,
    #[error("{}", if *redirected { "it redirects to a private address" } else { "the address is private" })]
    PrivateAddress { redirected: bool, kind: &'static str },
    #[error("the server redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects,
    #[error("the server redirected to an invalid address")]
    InvalidRedirect,
    #[error("it is larger than the {} limit", human_bytes(*limit))]
    TooLarge { limit: u64 },
    #[error("it took longer than {} s", after.as_secs_f64())]
    TimedOut { after: Duration },
    #[error("the server answered {0}")]
    Status(u16),
    #[error("the server could not be reached")]
    Unreachable(#[source] reqwest::Error),
    #[error("the download was interrupted")]
    Interrupted(#[source] reqwest::Error),
    #[error("the download could not start")]
    ClientUnavailable,
}

impl AttachmentError {
    fn refused(refusal: Refusal, redirected: bool) -> Self {
        match refusal {
            Refusal::NoHost => AttachmentError::InvalidUrl,
            Refusal::Scheme => AttachmentError::Scheme,
            Refusal::PrivateAddress { kind } => AttachmentError::PrivateAddress { redirected, kind },
        }
    }

    /// The sentence for [`AttachmentReport::failures`].
    fn note(&self, name: &str) -> String {
        match self {
            AttachmentError::NotText => format!("{name} is not a text file; not used"),
            AttachmentError::NotUtf8 => format!("{name} is not UTF-8 text; not used"),
            AttachmentError::TooMany { .. } => format!("{name} was not used ({self})"),
            _ => format!("{name} could not be fetched ({self})"),
        }
    }
}

/// Fetch the text-like attachments of a brief within `policy`, concurrently and under one
/// deadline. Never fails: what could not be used is explained in the report.
pub async fn fetch_attachments(attachments: &[Attachment], policy: &AttachmentPolicy) -> AttachmentReport {
    if attachments.is_empty() {
        return AttachmentReport::default();
    }
    let deadline = Instant::now() + policy.timeout;
    let fetcher = Fetcher::new(policy).map(Arc::new);
    if let Err(err) = &fetcher {
        tracing::warn!(error = %err, "no attachment can be fetched: the HTTP client did not start");
    }
    let mut outcomes: Vec<Option<Result<FetchedAttachment, AttachmentError>>> =
        (0..attachments.len()).map(|_| None).collect();
    let mut tasks = JoinSet::new();
    for (index, attachment) in attachments.iter().enumerate() {
        let name = display_name(attachment, index);
        let kind = if index >= policy.max_files {
            Err(AttachmentError::TooMany { limit: policy.max_files })
        } else {
            text_kind(attachment).ok_or(AttachmentError::NotText)
        };
        let (kind, fetcher) = match (kind, &fetcher) {
            (Err(err), _) => {
                outcomes[index] = Some(Err(err));
                continue;
            }
            (Ok(_), Err(_)) => {
                outcomes[index] = Some(Err(AttachmentError::ClientUnavailable));
                continue;
            }
            (Ok(kind), Ok(fetcher)) => (kind, Arc::clone(fetcher)),
        };
        let url = attachment.url.clone();
        tasks.spawn(async move {
            let text = tokio::time::timeout_at(deadline, fetcher.fetch_text(&url))
                .await
                .unwrap_or(Err(AttachmentError::TimedOut { after: fetcher.timeout }));
            let fetched = text.map(|text| FetchedAttachment {
                filename: name,
                content_type: kind.media_type().to_string(),
                text,
            });
            (index, fetched)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, fetched)) => outcomes[index] = Some(fetched),
            // Only a panic gets here; its file keeps no outcome and is reported below.
            Err(err) => tracing::warn!(error = %err, "an attachment fetch panicked"),
        }
    }

    let mut report = AttachmentReport::default();
    for ((index, attachment), outcome) in attachments.iter().enumerate().zip(outcomes) {
        let name = display_name(attachment, index);
        let host = host_for_log(&attachment.url);
        match outcome {
            Some(Ok(fetched)) => {
                tracing::debug!(attachment = %name, %host, bytes = fetched.text.len(), "attachment fetched");
                report.fetched.push(fetched);
            }
            Some(Err(err)) => {
                tracing::info!(attachment = %name, %host, error = %err, "attachment not used");
                if let Some(cause) = err.source() {
                    tracing::debug!(attachment = %name, %host, cause = ?cause, "attachment failure cause");
                }
                report.failures.push(err.note(&name));
            }
            None => report.failures.push(format!("{name} could not be fetched")),
        }
    }
    report
}

/// What every file of one brief shares.
struct Fetcher {
    client: Client,
    guard: Guard,
    max_bytes: u64,
    timeout: Duration,
}

impl Fetcher {
    /// The guarded client of [`egress::client_builder`]: no proxy, no redirects followed by
    /// itself (each hop is checked in [`Fetcher::fetch_text`]), names resolved through the guard.
    fn new(policy: &AttachmentPolicy) -> Result<Self, reqwest::Error> {
        let guard = Guard::new(policy.allow.clone());
        let client = egress::client_builder(&guard).connect_timeout(policy.timeout).timeout(policy.timeout).build()?;
        Ok(Self { client, guard, max_bytes: policy.max_bytes, timeout: policy.timeout })
    }

    /// Follow `url` (and at most [`MAX_REDIRECTS`] redirects, each checked) and read the body as
    /// text within the size limit.
    async fn fetch_text(&self, url: &str) -> Result<String, AttachmentError> {
        let mut url = Url::parse(url).map_err(|_| AttachmentError::InvalidUrl)?;
        let mut redirected = false;
        let mut redirects = 0;
        let response = loop {
            self.guard.check_url(&url).map_err(|refusal| AttachmentError::refused(refusal, redirected))?;
            let response = self.client.get(url.clone()).send().await.map_err(|err| self.send_error(err, redirected))?;
            if !response.status().is_redirection() {
                break response;
            }
            if redirects == MAX_REDIRECTS {
                return Err(AttachmentError::TooManyRedirects);
            }
            let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok());
            url = location.and_then(|l| url.join(l).ok()).ok_or(AttachmentError::InvalidRedirect)?;
            redirected = true;
            redirects += 1;
        };
        if !response.status().is_success() {
            return Err(AttachmentError::Status(response.status().as_u16()));
        }
        let body = read_limited(response, self.max_bytes).await?;
        let text = String::from_utf8(body).map_err(|_| AttachmentError::NotUtf8)?;
        // NUL is valid UTF-8 but no text file has one; UTF-16 exports are full of them.
        if text.contains('\0') {
            return Err(AttachmentError::NotUtf8);
        }
        Ok(text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text))
    }

    /// A send failure in the buyer's terms: the guard's refusal, found among the error's
    /// sources, is a private address; anything else an unreachable server.
    fn send_error(&self, err: reqwest::Error, redirected: bool) -> AttachmentError {
        if let Some(kind) = egress::resolver_refusal(&err) {
            return AttachmentError::PrivateAddress { redirected, kind };
        }
        if err.is_timeout() {
            return AttachmentError::TimedOut { after: self.timeout };
        }
        AttachmentError::Unreachable(err.without_url())
    }
}

/// The body, refused as soon as it exceeds `max_bytes`: a declared length is checked first, but
/// the count that matters is of the bytes that actually arrive.
async fn read_limited(mut response: Response, max_bytes: u64) -> Result<Vec<u8>, AttachmentError> {
    let too_large = AttachmentError::TooLarge { limit: max_bytes };
    let declared = response.content_length();
    if declared.is_some_and(|len| len > max_bytes) {
        return Err(too_large);
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(max_bytes) as usize);
    while let Some(chunk) = response.chunk().await.map_err(|err| AttachmentError::Interrupted(err.without_url()))? {
        if body.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The kinds of text we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    Plain,
    Markdown,
    Csv,
    Tsv,
    Json,
}

impl TextKind {
    fn media_type(self) -> &'static str {
        match self {
            TextKind::Plain => "text/plain",
            TextKind::Markdown => "text/markdown",
            TextKind::Csv => "text/csv",
            TextKind::Tsv => "text/tab-separated-values",
            TextKind::Json => "application/json",
        }
    }

    fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "text/plain" => Some(TextKind::Plain),
            "text/markdown" | "text/x-markdown" => Some(TextKind::Markdown),
            "text/csv" | "application/csv" => Some(TextKind::Csv),
            "text/tab-separated-values" | "text/tsv" => Some(TextKind::Tsv),
            "application/json" | "text/json" => Some(TextKind::Json),
            _ => None,
        }
    }

    fn from_extension(name: &str) -> Option<Self> {
        let (_, extension) = name.rsplit_once('.')?;
        match extension.to_ascii_lowercase().as_str() {
            "txt" | "text" => Some(TextKind::Plain),
            "md" | "markdown" => Some(TextKind::Markdown),
            "csv" => Some(TextKind::Csv),
            "tsv" => Some(TextKind::Tsv),
            "json" => Some(TextKind::Json),
            _ => None,
        }
    }
}

/// The kind of text an attachment is, or `None` for anything else. The declared type decides;
/// the file name (or the link's path) only when the type says nothing useful.
fn text_kind(attachment: &Attachment) -> Option<TextKind> {
    let media_type = attachment.content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media_type.as_str() {
        // Browsers on Windows upload a .csv as Excel's type; the extension tells which it is.
        "" | "application/octet-stream" | "binary/octet-stream" | "application/vnd.ms-excel" => {
            TextKind::from_extension(&attachment.filename).or_else(|| {
                let url = Url::parse(&attachment.url).ok()?;
                TextKind::from_extension(url.path_segments()?.next_back()?)
            })
        }
        other => TextKind::from_media_type(other),
    }
}

/// What to call an attachment in a sentence: its file name, else the link's last path segment
/// (never the query), else its position.
fn display_name(attachment: &Attachment, index: usize) -> String {
    const MAX_CHARS: usize = 80;
    let from_url = || {
        let url = Url::parse(&attachment.url).ok()?;
        Some(url.path_segments()?.next_back()?.to_string())
    };
    let name = Some(attachment.filename.as_str())
        .filter(|n| !n.trim().is_empty())
        .map(str::to_string)
        .or_else(from_url)
        .unwrap_or_default();
    let name: String = name.trim().chars().filter(|c| !c.is_control()).take(MAX_CHARS).collect();
    if name.is_empty() { format!("attachment {}", index + 1) } else { name }
}

/// The host of a link, for logs: never its path or query.
fn host_for_log(url: &str) -> String {
    Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| "-".to_string())
}

/// `KiB`/`MiB` when the limit is a whole number of them, as configured limits usually are.
fn human_bytes(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(filename: &str, url: &str, content_type: &str) -> Attachment {
        Attachment { filename: filename.into(), url: url.into(), content_type: content_type.into() }
    }

    #[test]
    fn text_like_files_are_recognised_by_type_then_extension() {
        let kind = |name: &str, ty: &str| text_kind(&attachment(name, "https://x.example/f?sig=1", ty));
        assert_eq!(kind("sales.csv", "text/csv"), Some(TextKind::Csv));
        assert_eq!(kind("data", "application/json; charset=utf-8"), Some(TextKind::Json));
        assert_eq!(kind("notes", "Text/Plain"), Some(TextKind::Plain));
        assert_eq!(kind("README.md", ""), Some(TextKind::Markdown));
        assert_eq!(kind("table.TSV", "application/octet-stream"), Some(TextKind::Tsv));
        assert_eq!(kind("export.csv", "application/vnd.ms-excel"), Some(TextKind::Csv));
        assert_eq!(kind("export.xls", "application/vnd.ms-excel"), None);
        assert_eq!(kind("logo.png", "image/png"), None);
        assert_eq!(kind("logo.png", ""), None);
        assert_eq!(kind("page.html", "text/html"), None);
        // A declared type wins over the name.
        assert_eq!(kind("sales.csv", "application/pdf"), None);
        // No name: the link's path decides, never its query.
        let unnamed = attachment("", "https://x.example/dir/report.json?name=a.png", "");
        assert_eq!(text_kind(&unnamed), Some(TextKind::Json));
        assert_eq!(display_name(&unnamed, 0), "report.json");
        assert_eq!(display_name(&attachment(" ", "not a url", ""), 2), "attachment 3");
    }

    #[test]
    fn failure_notes_are_sentences_without_links() {
        let private = AttachmentError::PrivateAddress { redirected: false, kind: "private" };
        assert_eq!(private.note("sales.csv"), "sales.csv could not be fetched (the address is private)");
        assert_eq!(AttachmentError::NotText.note("logo.png"), "logo.png is not a text file; not used");
        assert_eq!(AttachmentError::NotUtf8.note("notes.txt"), "notes.txt is not UTF-8 text; not used");
        assert_eq!(
            AttachmentError::TooLarge { limit: 2 * 1024 * 1024 }.note("big.csv"),
            "big.csv could not be fetched (it is larger than the 2 MiB limit)"
        );
        assert_eq!(
            AttachmentError::TimedOut { after: Duration::from_secs(10) }.note("slow.csv"),
            "slow.csv could not be fetched (it took longer than 10 s)"
        );
        assert_eq!(human_bytes(1500), "1500 bytes");
    }

    #[tokio::test]
    async fn a_name_the_resolver_refuses_is_a_private_address_to_the_buyer() {
        // Port 9 has no listener: a connection attempt would say "unreachable".
        let fetcher = Fetcher::new(&AttachmentPolicy::default()).unwrap();
        let err = fetcher.client.get("http://localhost:9/a.csv").send().await.unwrap_err();
        let err = fetcher.send_error(err, true);
        assert!(matches!(err, AttachmentError::PrivateAddress { redirected: true, .. }), "{err:?}");
        assert_eq!(err.to_string(), "it redirects to a private address");
        let refused = AttachmentError::refused(Refusal::PrivateAddress { kind: "loopback" }, false);
        assert_eq!(refused.to_string(), "the address is private");
    }
}
