"""Plugins seen through the official OpenAI Python SDK.

Usage: openai_plugins.py BASE_URL. Prints one JSON object with what the SDK saw.
"""
import json
import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
out = {}


def streamed(prompt):
    stream = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": prompt}], stream=True
    )
    return "".join((c.choices[0].delta.content or "") for c in stream if c.choices)


# A stream rewritten event by event, and one held back and released at the end.
out["shout"] = streamed("shout please")
out["hold"] = streamed("hold on")
# A local answer, streamed as a chat completion stream.
out["canned"] = streamed("maintenance? shout")
# A local error answer: the SDK raises with its status and code.
try:
    client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "maintenance window?"}]
    )
    out["closed"] = None
except openai.APIStatusError as e:
    out["closed"] = {"status": e.status_code, "code": e.body.get("code") if isinstance(e.body, dict) else None}
# A stream a plugin ends: an error in the SDK, not a short answer.
try:
    out["cutoff_text"] = streamed("cutoff now")
    out["cutoff_error"] = None
except openai.APIError as e:
    out["cutoff_error"] = type(e).__name__
print(json.dumps(out))
