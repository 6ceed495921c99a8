//! The business strategy: for now the general one.

use super::compose::{Draft, Writer};
use super::{GenerationPlan, general};
use crate::engine::EngineError;
use crate::protocol::Brief;

pub async fn write(brief: &Brief, plan: &GenerationPlan, writer: &mut Writer<'_>) -> Result<Draft, EngineError> {
    general::write(brief, plan, writer).await
}
