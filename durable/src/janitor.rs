//! The singleton Janitor: retention of rows that belong to no org (for now a
//! placeholder alarm that re-arms nothing; retention arrives with its issue).

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

/// Name used with `id_from_name` to reach the one Janitor.
pub const JANITOR_NAME: &str = "janitor";
/// URL an OrgActor fetches to make sure the Janitor's alarm is set.
pub const ARM_URL: &str = "https://janitor.internal/arm";

#[durable_object]
pub struct Janitor {
    #[allow(dead_code)]
    state: State,
    #[allow(dead_code)]
    env: Env,
}

impl DurableObject for Janitor {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, _req: Request) -> Result<Response> {
        Ok(Response::builder().with_status(204).empty())
    }

    async fn alarm(&self) -> Result<Response> {
        Ok(Response::builder().with_status(204).empty())
    }
}
