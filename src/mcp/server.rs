//! The MCP server itself: what `initialize` answers, the tool list, and the
//! dispatch of each `tools/call` to its tool (`chat.rs`, `admin.rs`).
//!
//! A call runs until it has its answer or the MCP client cancels it
//! (`notifications/cancelled`, which rmcp turns into the request's
//! cancellation token): then the call's future is dropped, and with it the
//! HTTP request to the daemon, whose connection closes; the daemon cancels
//! a session whose client went away (`CANCELLED`, upstream call aborted).

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use super::chat::{self, Progress};
use super::daemon::Link;
use super::tools::{self, ToolName};
use super::{admin, args, identity};

/// What `initialize` tells the client about using this server.
const INSTRUCTIONS: &str = "Switchboard is a local gateway to LLM providers (Kimi, GLM, \
    OpenAI-compatible). `chat` sends a request through it (use `models` for the model names); \
    every call is a daemon session: `sessions` lists the live ones, `session` shows one \
    timeline, `cancel` stops one.";

/// The server: the link to the daemon and the tool list, shared by calls.
#[derive(Clone)]
pub struct Server {
    /// The daemon's socket client.
    link: Arc<Link>,
    /// Built once; every `tools/list` answers it.
    tools: Arc<Vec<Tool>>,
}

impl Server {
    /// A server calling the daemon through `link`.
    pub fn new(link: Link) -> Self {
        Self {
            link: Arc::new(link),
            tools: Arc::new(tools::all()),
        }
    }

    /// Runs one call of a known tool; bad arguments are a tool error.
    async fn run(
        &self,
        tool: ToolName,
        arguments: rmcp::model::JsonObject,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let link = &*self.link;
        let checked = match tool {
            ToolName::Chat => args::chat(&arguments).map(|args| {
                let metadata = identity::metadata(context.client_info().as_ref());
                let progress = context.meta.get_progress_token().map(|token| Progress {
                    peer: context.peer.clone(),
                    token,
                });
                Call::Chat(Box::new(args), metadata, progress)
            }),
            ToolName::Models => args::none(&arguments).map(|()| Call::Models),
            ToolName::Sessions => args::none(&arguments).map(|()| Call::Sessions),
            ToolName::Session => args::session_id(&arguments).map(Call::Session),
            ToolName::Cancel => args::session_id(&arguments).map(Call::Cancel),
        };
        match checked {
            Ok(Call::Chat(args, metadata, progress)) => {
                chat::run(link, &args, metadata, progress).await
            }
            Ok(Call::Models) => admin::models(link).await,
            Ok(Call::Sessions) => admin::sessions(link).await,
            Ok(Call::Session(id)) => admin::session(link, &id).await,
            Ok(Call::Cancel(id)) => admin::cancel(link, &id).await,
            Err(message) => {
                tracing::info!(tool = tool.as_str(), "refused: bad arguments");
                CallToolResult::error(vec![ContentBlock::text(message)])
            }
        }
    }
}

/// A call whose arguments passed their checks.
enum Call {
    /// `chat`, with the client's metadata and where its progress goes.
    Chat(
        Box<args::ChatArgs>,
        Option<serde_json::Value>,
        Option<Progress>,
    ),
    Models,
    Sessions,
    Session(String),
    Cancel(String),
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("switchboard", env!("CARGO_PKG_VERSION"))
                    .with_title("Switchboard"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(tool) = ToolName::parse(&request.name) else {
            return Err(McpError::invalid_params(
                "unknown tool: the tools are chat, models, sessions, session and cancel",
                None,
            ));
        };
        let arguments = request.arguments.unwrap_or_default();
        tokio::select! {
            result = self.run(tool, arguments, &context) => Ok(result.into()),
            () = context.ct.cancelled() => {
                tracing::info!(tool = tool.as_str(),
                    "cancelled by the MCP client: the request to the daemon is dropped");
                Err(McpError::internal_error("the call was cancelled", None))
            }
        }
    }
}
