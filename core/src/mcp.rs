//! MCP (Model Context Protocol) over Streamable HTTP: JSON-RPC messages,
//! protocol versions, tools and prompts (stub; see issue 7).

/// Body cap of `POST /mcp`.
pub const MCP_BODY_LIMIT: u64 = 256 * 1024;
