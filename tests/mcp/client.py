"""A real MCP client (the Python `mcp` SDK) for the integration tests.

It starts `switchboard mcp --socket SOCKET` as a stdio server, the way
Claude Desktop or Claude Code would, and is driven by the Rust test through
its own stdin and stdout, one JSON object per line:

  in:  {"op": "list_tools"}
       {"op": "call", "id": "a", "tool": "chat", "args": {...}, "progress": true}
       {"op": "cancel", "id": "a"}   (cancels the SDK call: notifications/cancelled)
       {"op": "exit"}
  out: {"event": "ready", "protocol_version": ..., "server": {...}}
       {"event": "tools", "tools": [{name, description, inputSchema, ...}]}
       {"event": "progress", "id": "a", "progress": 1.0, "message": "w0 "}
       {"event": "result", "id": "a", "result": {"isError": ..., "texts": [...], "structured": ...}}
       {"event": "cancelled", "id": "a"}
       {"event": "error", "id": "a", "error": "..."}

Calls run concurrently; the server's stderr is this process's stderr.
"""

import argparse
import json
import sys

import anyio
from mcp import Client, StdioServerParameters
from mcp.types import Implementation


def emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def dump_result(result) -> dict:
    texts = [block.text for block in result.content if getattr(block, "type", None) == "text"]
    return {"isError": bool(result.is_error), "texts": texts, "structured": result.structured_content}


async def run_call(client: Client, command: dict, scope: anyio.CancelScope) -> None:
    call_id = command["id"]

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        emit({"event": "progress", "id": call_id, "progress": progress, "message": message})

    with scope:
        try:
            result = await client.call_tool(
                command["tool"],
                command.get("args", {}),
                progress_callback=on_progress if command.get("progress") else None,
            )
            emit({"event": "result", "id": call_id, "result": dump_result(result)})
        except Exception as err:  # reported to the test, which decides
            emit({"event": "error", "id": call_id, "error": f"{type(err).__name__}: {err}"})
    if scope.cancelled_caught:
        emit({"event": "cancelled", "id": call_id})


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True, help="the switchboard binary")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--mode", default="auto", help="auto (discover, else initialize) or legacy")
    parser.add_argument("--client-name", default="switchboard-tests")
    parser.add_argument("--client-version", default="0.0.1")
    parser.add_argument("--rust-log", default="info")
    opts = parser.parse_args()

    params = StdioServerParameters(
        command=opts.server,
        args=["mcp", "--socket", opts.socket],
        env={"RUST_LOG": opts.rust_log},
    )
    info = Implementation(name=opts.client_name, version=opts.client_version)
    async with Client(params, client_info=info, mode=opts.mode) as client:
        server = client.server_info
        emit({
            "event": "ready",
            "protocol_version": client.protocol_version,
            "server": server.model_dump(mode="json", exclude_none=True) if server else None,
        })
        scopes: dict[str, anyio.CancelScope] = {}
        async with anyio.create_task_group() as group:
            while True:
                line = await anyio.to_thread.run_sync(sys.stdin.readline)
                if not line:
                    break
                command = json.loads(line)
                op = command["op"]
                if op == "exit":
                    break
                if op == "list_tools":
                    listed = await client.list_tools()
                    tools = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in listed.tools]
                    emit({"event": "tools", "tools": tools})
                elif op == "call":
                    scope = anyio.CancelScope()
                    scopes[command["id"]] = scope
                    group.start_soon(run_call, client, command, scope)
                elif op == "cancel":
                    scopes[command["id"]].cancel()
                else:
                    emit({"event": "error", "id": command.get("id"), "error": f"unknown op {op}"})
            group.cancel_scope.cancel()
    emit({"event": "closed"})


if __name__ == "__main__":
    anyio.run(main)
