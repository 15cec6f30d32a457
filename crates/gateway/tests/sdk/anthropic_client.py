"""Drives a Switchyard gateway with the official Anthropic Python SDK.

Usage: anthropic_client.py "BASE_URL TOOLS_BASE_URL". BASE_URL serves simulated
engines; TOOLS_BASE_URL a gateway whose upstream answers with a tool call. Prints one
JSON object with what the SDK saw.
"""
import json
import sys

import anthropic

base, tools_base = sys.argv[1].split()
client = anthropic.Anthropic(base_url=base, api_key="k", max_retries=0)
out = {}

system = [{"type": "text", "text": "You answer questions about programs. " * 40,
           "cache_control": {"type": "ephemeral"}}]
question = [{"role": "user", "content": "How do I compile a Rust program?"}]

raw = client.messages.with_raw_response.create(
    model="auto", max_tokens=12, system=system, messages=question)
message = raw.parse()
out["route"] = raw.headers.get("x-switchyard-route")
out["text"] = "".join(b.text for b in message.content if b.type == "text")
out["stop_reason"] = message.stop_reason
out["usage"] = message.usage.model_dump()

with client.messages.stream(model="auto", max_tokens=9, system=system,
                            messages=question) as stream:
    out["stream_text"] = "".join(stream.text_stream)
    final = stream.get_final_message()
out["stream_usage"] = final.usage.model_dump()
out["stream_stop_reason"] = final.stop_reason

out["count"] = client.messages.count_tokens(
    model="auto", system=system, messages=question).input_tokens

try:
    client.messages.create(model="no-such-model", max_tokens=5, messages=question)
    out["not_found"] = None
except anthropic.NotFoundError as e:
    out["not_found"] = e.status_code
    out["not_found_type"] = e.body["error"]["type"]
try:
    client.messages.create(model="auto", max_tokens=0, messages=question)
    out["bad"] = None
except anthropic.BadRequestError as e:
    out["bad"] = e.body["error"]["message"]

out["models"] = [m.id for m in client.models.list()]

tools = anthropic.Anthropic(base_url=tools_base, api_key="k", max_retries=0)
weather = [{"name": "get_weather", "description": "Weather of a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
asked = [{"role": "user", "content": "Weather in Paris?"}]
called = tools.messages.create(model="m", max_tokens=50, tools=weather, messages=asked)
use = [b for b in called.content if b.type == "tool_use"][0]
out["tool"] = {"name": use.name, "input": use.input, "stop_reason": called.stop_reason}
followup = asked + [
    {"role": "assistant", "content": [b.model_dump() for b in called.content]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C"}]},
]
with tools.messages.stream(model="m", max_tokens=50, tools=weather, messages=followup) as stream:
    final = stream.get_final_message()
use = [b for b in final.content if b.type == "tool_use"][0]
out["stream_tool"] = {"name": use.name, "input": use.input, "stop_reason": final.stop_reason,
                      "cache_read": final.usage.cache_read_input_tokens}
print(json.dumps(out))
