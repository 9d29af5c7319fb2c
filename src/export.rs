//! `GET /v1/interactions/export`, the front's side: the request becomes an
//! `Op` as any other, the org's actor decides and answers; when the export
//! may start, the actor's reply body (the NDJSON rows, read page by page as
//! the client reads) is passed through as this response's body, never
//! buffered here.

use crate::actor::ActorClient;
use crate::answered::Answered;
use crate::auth::Verified;
use crate::ops::{build, Built};
use interlog_core::protocol::Op;
use interlog_core::routes::Endpoint;
use interlog_core::ApiError;
use worker::Request;

/// Builds the export's operation, asks the actor and shapes its answer with
/// the streamed body attached.
pub async fn serve(req: &Request, client: &ActorClient<'_>, who: &Verified, now_ms: i64) -> Result<Answered, ApiError> {
    let built = build(req, &Endpoint::ExportInteractions, who, None, now_ms).unwrap_or_else(|error| Built {
        op: Op::Invalid { error },
        cursor_scope: None,
        minted: None,
    });
    let (response, stream) = client.call_streaming(built.op.clone()).await?;
    let mut answered = Answered::from_response(response, who, Some(&built));
    if let Ok(reply) = answered.reply.as_mut() {
        match stream {
            Some(stream) => reply.stream = Some(stream),
            // An export answer always comes with its rows.
            None if reply.status == 200 => answered.reply = Err(ApiError::internal("export reply without a body")),
            None => {}
        }
    }
    Ok(answered)
}
