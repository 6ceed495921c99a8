//! The request path of `/execute` — authentication, parsing, normalisation — on arbitrary
//! requests. The invariants live in `tests/request_path/mod.rs`, shared with the
//! `request_path_regressions` test; this target only decides what the request looks like.
//!
//! The input is a `Case` (via `arbitrary`): how each header is formed, then the body, which takes
//! every remaining byte. Twenty zero bytes decode to "the right key, a fresh timestamp, signed
//! with the first secret, no task-id header", so a seed is 20 zero bytes and a JSON brief, and most
//! mutations of a seed get past authentication into parsing and normalisation.

#![no_main]

use arbitrary::Arbitrary;
use bidder::http::auth::sign;
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/request_path/mod.rs"]
mod request_path;

use request_path::{NOW_SECS, RawRequest, SECRETS};

#[derive(Arbitrary, Debug)]
enum Key {
    Right,
    Missing,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Signature {
    /// The body's HMAC under one of the configured secrets (`false`: the first).
    Right {
        second_secret: bool,
        form: Form,
    },
    /// A well-formed signature under a secret the agent does not have.
    Foreign,
    Missing,
    Raw(Vec<u8>),
}

/// The spellings protocol §3 accepts, and one it does not quite.
#[derive(Arbitrary, Debug)]
enum Form {
    Lower,
    Upper,
    Prefixed,
    PrefixedUpper,
    /// Surrounded by `pad` (spaces, tabs, anything).
    Padded {
        pad: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
enum Timestamp {
    /// Unix seconds, `skew` seconds from now.
    Fresh {
        skew: i16,
    },
    Missing,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Case<'a> {
    key: Key,
    signature: Signature,
    timestamp: Timestamp,
    task_id: Option<Vec<u8>>,
    /// Last, so it takes the rest of the input, byte for byte.
    body: &'a [u8],
}

impl Case<'_> {
    fn request(self) -> RawRequest {
        let right = RawRequest::signed(self.body, SECRETS[0]);
        let signature = match self.signature {
            Signature::Right { second_secret: false, form: Form::Lower } => right.signature,
            Signature::Right { second_secret, form } => {
                let hex = sign(SECRETS[usize::from(second_secret)], self.body);
                Some(match form {
                    Form::Lower => hex.into_bytes(),
                    Form::Upper => hex.to_uppercase().into_bytes(),
                    Form::Prefixed => format!("sha256={hex}").into_bytes(),
                    Form::PrefixedUpper => format!("SHA256={}", hex.to_uppercase()).into_bytes(),
                    Form::Padded { pad } => [&pad, hex.as_bytes(), &pad].concat(),
                })
            }
            Signature::Foreign => Some(sign("not-our-secret", self.body).into_bytes()),
            Signature::Missing => None,
            Signature::Raw(raw) => Some(raw),
        };
        RawRequest {
            key: match self.key {
                Key::Right => right.key,
                Key::Missing => None,
                Key::Raw(raw) => Some(raw),
            },
            signature,
            timestamp: match self.timestamp {
                Timestamp::Fresh { skew } => Some((NOW_SECS as i64 + i64::from(skew)).to_string().into_bytes()),
                Timestamp::Missing => None,
                Timestamp::Raw(raw) => Some(raw),
            },
            task_id: self.task_id,
            body: self.body.to_vec(),
        }
    }
}

fuzz_target!(|case: Case| {
    request_path::check(&case.request());
});
