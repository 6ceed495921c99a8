//! The AITasker wire contract (`../shared/protocol.md`): the brief as the platform sends it,
//! parsed leniently into one normalised [`Brief`], and the response superset we return.
//! Nothing here knows about HTTP or models.

mod brief;
mod response;

pub use brief::{Attachment, Brief, Callback, Phase, ProtocolError, Requirement, check_task_id_header, parse_brief};
pub use response::{Artifact, Check, ExecuteResponse, ResponseMetadata, TokenUsage};
