"""Drives a Switchyard gateway with the official OpenAI Python SDK.

Usage: openai_client.py BASE_URL. Prints one JSON object with what the SDK saw.
"""
import json
import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
out = {}

raw = client.chat.completions.with_raw_response.create(
    model="auto",
    messages=[{"role": "user", "content": "How do I compile a Rust program?"}],
    max_tokens=12,
)
completion = raw.parse()
out["route"] = raw.headers.get("x-switchyard-route")
out["text"] = completion.choices[0].message.content
out["finish_reason"] = completion.choices[0].finish_reason
out["usage"] = completion.usage.model_dump()

stream = client.chat.completions.create(
    model="auto",
    messages=[{"role": "user", "content": "Explain Python decorators"}],
    max_tokens=9,
    stream=True,
    stream_options={"include_usage": True},
)
pieces, usage = [], None
for chunk in stream:
    if chunk.choices:
        pieces.append(chunk.choices[0].delta.content or "")
    if chunk.usage is not None:
        usage = chunk.usage.model_dump()
out["stream_pieces"] = len(pieces)
out["stream_text"] = "".join(pieces)
out["stream_usage"] = usage

try:
    client.chat.completions.create(
        model="no-such-model", messages=[{"role": "user", "content": "x"}]
    )
    out["not_found"] = None
except openai.NotFoundError as e:
    out["not_found"] = e.status_code

models = client.models.list()
out["models"] = [m.id for m in models.data]

# A stream cut upstream must surface as an error in the SDK, not as a short answer.
try:
    cut = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "cut me off"}],
        max_tokens=50,
        stream=True,
    )
    out["cut_text"] = "".join((c.choices[0].delta.content or "") for c in cut if c.choices)
    out["cut_error"] = None
except openai.APIError as e:
    out["cut_error"] = type(e).__name__

print(json.dumps(out))
