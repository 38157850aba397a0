"""Drives the `anthropic` Python SDK against the daemon's Unix socket, for
tests/the_anthropic_sdk_gets_messages_and_streams_over_the_socket.rs.

Usage: client.py SOCKET MODE MODEL
  message     one message; prints {"text", "usage", "session"}
  stream      a stream read to its end; prints {"text", "usage", "events"}
  error       a request expected to fail; prints {"error", "status", "body"}
  disconnect  reads the first text delta of a stream, prints "READ" and
              waits for a line on stdin, then closes the stream and exits

Each result is one line of JSON on stdout. The client's own API key is a
marker the test looks for upstream (it must never get there).
"""

import json
import sys

import anthropic

try:  # anthropic >= 2.x is built on httpx2, earlier releases on httpx
    import httpx2 as httpx
except ImportError:
    import httpx

CLIENT_KEY = "sk-ant-client-key-MUST-NOT-FORWARD"


def client(socket):
    transport = httpx.HTTPTransport(uds=socket)
    return anthropic.Anthropic(
        base_url="http://switchboard",
        api_key=CLIENT_KEY,
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(transport=transport),
    )


def ask(model):
    return dict(
        model=model,
        max_tokens=64,
        messages=[{"role": "user", "content": "hello from the anthropic sdk"}],
    )


def message(c, model):
    reply = c.messages.create(**ask(model))
    text = "".join(block.text for block in reply.content if block.type == "text")
    usage = {"input": reply.usage.input_tokens, "output": reply.usage.output_tokens}
    return {"text": text, "usage": usage, "session": (reply.model_extra or {}).get("session")}


def stream(c, model):
    events = []
    with c.messages.stream(**ask(model)) as s:
        for event in s:
            events.append(event.type)
        final = s.get_final_message()
    text = "".join(block.text for block in final.content if block.type == "text")
    usage = {"input": final.usage.input_tokens, "output": final.usage.output_tokens}
    return {"text": text, "usage": usage, "events": events}


def error(c, model):
    try:
        c.messages.create(**ask(model))
    except anthropic.APIStatusError as err:
        return {"error": type(err).__name__, "status": err.status_code, "body": err.body}
    return {"error": None}


def disconnect(c, model):
    with c.messages.stream(**ask(model)) as s:
        for event in s:
            if event.type == "content_block_delta":
                print("READ", flush=True)
                sys.stdin.readline()
                break
    return {"closed": True}


def main():
    socket, mode, model = sys.argv[1:4]
    modes = {"message": message, "stream": stream, "error": error, "disconnect": disconnect}
    result = modes[mode](client(socket), model)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
