"""Calls the daemon with the `openai` and `anthropic` Python SDKs configured
by nothing but the environment `switchboard env` printed (no base URL or key
in code), for tests/switchboard_env_points_the_openai_and_anthropic_sdks_at_tcp.rs.

Usage: sdks.py MODEL    prints one JSON line {"openai": text, "anthropic": text}
"""

import json
import sys

import anthropic
import openai

model = sys.argv[1]
chat = openai.OpenAI(max_retries=0).chat.completions.create(
    model=model, messages=[{"role": "user", "content": "hello over TCP"}]
)
message = anthropic.Anthropic(max_retries=0).messages.create(
    model=model, max_tokens=16, messages=[{"role": "user", "content": "hello over TCP"}]
)
print(json.dumps({
    "openai": chat.choices[0].message.content,
    "anthropic": "".join(block.text for block in message.content if block.type == "text"),
}))
