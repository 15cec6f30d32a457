"""Reads a cached answer with the official OpenAI Python SDK, streamed.

Usage: openai_cache.py BASE_URL. Asks the same question twice as a stream with usage
(the second is answered from the cache), and prints one JSON object with what the SDK
saw each time.
"""
import json
import sys

import openai

base = sys.argv[1]
client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
out = []
for _ in range(2):
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "Name three prime numbers, please."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage, finish = [], None, None
    for chunk in raw.parse():
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
    out.append(
        {
            "cache": raw.headers.get("x-switchyard-cache"),
            "text": "".join(pieces),
            "finish_reason": finish,
            "usage": usage,
        }
    )
print(json.dumps(out))
