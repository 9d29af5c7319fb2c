//! Transport to the org's Durable Object: the stub, one typed call, the typed
//! reply. Nothing here decides anything; `core::protocol` defines what travels.

use crate::faults::Faults;
use interlog_core::config::binding;
use interlog_core::operator::MoveAction;
use interlog_core::protocol::{
    CallMeta, DoRequest, DoResponse, Op, VerifiedKey, CALL_HEADER, ORG_ACTOR_URL, REPLY_HEADER,
};
use interlog_core::shard::ShardId;
use interlog_core::{ApiError, KeyPrefix, OrgId};
use interlog_durable::platform::storage_error;
use worker::wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::ReadableStream;
use worker::{Env, Headers, Method, Request, RequestInit, ResponseBody};

/// Everything every call of one client request to the org's actor carries.
pub struct ActorClient<'a> {
    env: &'a Env,
    meta: CallMeta,
    key: VerifiedKey,
    origin: Option<String>,
    faults: Faults,
}

impl<'a> ActorClient<'a> {
    /// A client for the verified caller's org.
    pub fn new(env: &'a Env, meta: CallMeta, key: VerifiedKey, origin: Option<String>, faults: Faults) -> Self {
        Self { env, meta, key, origin, faults }
    }

    /// Asks the actor to serve `op` (after its access decision).
    pub async fn call(&self, op: Op) -> Result<DoResponse, ApiError> {
        send(self.env, &self.request(op), None, self.faults.actor_of.as_ref()).await
    }

    /// Like [`ActorClient::call`], forwarding the client's body as is (parsed
    /// once, by the actor).
    pub async fn call_with_body(&self, op: Op, body: &[u8]) -> Result<DoResponse, ApiError> {
        send(self.env, &self.request(op), Some(body), self.faults.actor_of.as_ref()).await
    }

    /// Like [`ActorClient::call`] for an operation whose reply may stream
    /// (an export): the answer, and the body stream when the actor sent one.
    pub async fn call_streaming(&self, op: Op) -> Result<(DoResponse, Option<ReadableStream>), ApiError> {
        let mut resp = fetch_reply(self.env, &self.request(op), None, self.faults.actor_of.as_ref()).await?;
        let header = resp.headers().get(REPLY_HEADER).ok().flatten();
        match (header, resp.body()) {
            (Some(answer), ResponseBody::Stream(stream)) => {
                Ok((DoResponse::from_reply(answer.as_bytes())?, Some(stream.clone())))
            }
            _ => {
                let reply = resp.bytes().await.map_err(|e| storage_error("org actor reply", e))?;
                Ok((DoResponse::from_reply(&reply)?, None))
            }
        }
    }

    fn request(&self, op: Op) -> DoRequest {
        DoRequest::Serve {
            meta: self.meta.clone(),
            key: self.key.clone(),
            origin: self.origin.clone(),
            inject_fault: self.faults.d1,
            fail_shard: self.faults.shard_down.clone(),
            op,
        }
    }
}

/// Tells the org's actor that a wrong secret was presented for `prefix`.
pub async fn record_auth_failure(env: &Env, meta: CallMeta, prefix: KeyPrefix) -> Result<DoResponse, ApiError> {
    send(env, &DoRequest::AuthFailure { meta, prefix }, None, None).await
}

/// Asks the org's actor to apply D1's key revocations and expiries (the
/// operator's signed reconcile call).
pub async fn reconcile(env: &Env, meta: CallMeta) -> Result<DoResponse, ApiError> {
    send(env, &DoRequest::Reconcile { meta }, None, None).await
}

/// Asks the org's actor for one step of its move to shard `to` (the
/// operator's signed move call).
pub async fn move_step(env: &Env, meta: CallMeta, to: ShardId, action: MoveAction) -> Result<DoResponse, ApiError> {
    send(env, &DoRequest::Move { meta, to, action }, None, None).await
}

/// Sends one call to the org's actor and reads its answer. `misroute` (a
/// test-only fault) addresses another org's actor with the same call.
async fn send(
    env: &Env,
    call: &DoRequest,
    payload: Option<&[u8]>,
    misroute: Option<&OrgId>,
) -> Result<DoResponse, ApiError> {
    let resp = fetch_reply(env, call, payload, misroute).await?;
    DoResponse::from_reply(&read_reply(resp).await?)
}

/// The reply's bytes, read in one piece (`arrayBuffer()`): reading it as a
/// stream of chunks through wasm costs several boundary crossings per call.
async fn read_reply(resp: worker::Response) -> Result<Vec<u8>, ApiError> {
    let raw: worker::web_sys::Response = resp.into();
    let pending = raw.array_buffer().map_err(|e| storage_error("org actor reply", e.into()))?;
    let buffer = JsFuture::from(pending).await.map_err(|e| storage_error("org actor reply", e.into()))?;
    Ok(worker::js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Sends one call to the org's actor; its reply unread.
async fn fetch_reply(
    env: &Env,
    call: &DoRequest,
    payload: Option<&[u8]>,
    misroute: Option<&OrgId>,
) -> Result<worker::Response, ApiError> {
    let org = misroute.unwrap_or(&call.meta().org_id).as_str();
    let stub = env
        .durable_object(binding::ORG_ACTOR)
        .and_then(|ns| ns.id_from_name(org)?.get_stub())
        .map_err(|e| storage_error("org actor stub", e))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post);
    match payload {
        // The client's body travels as is; the call itself in a header.
        Some(bytes) => {
            let headers = Headers::new();
            headers.set(CALL_HEADER, &call.to_json()).map_err(|e| storage_error("org actor header", e))?;
            init.with_headers(headers).with_body(Some(worker::js_sys::Uint8Array::from(bytes).into()));
        }
        None => {
            init.with_body(Some(JsValue::from_str(&call.to_json())));
        }
    }
    let request = Request::new_with_init(ORG_ACTOR_URL, &init).map_err(|e| storage_error("org actor request", e))?;
    stub.fetch_with_request(request).await.map_err(|e| storage_error("org actor call", e))
}
