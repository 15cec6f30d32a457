"""Tool permissions seen through the official OpenAI Python SDK.

Usage: openai_tools.py "BASE_URL ROLES" (one argument). The upstream calls the tool
the user message names. Prints one JSON object with what the SDK saw.
"""
import json
import sys

import openai

base, roles = sys.argv[1].split(" ", 1)
client = openai.OpenAI(
    base_url=f"{base}/v1",
    api_key="unused",
    max_retries=0,
    default_headers={"x-user-id": "sam", "x-user-roles": roles},
)
TOOLS = [
    {"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}}
    for n in ["search_docs", "delete_user"]
]
out = {}


def ask(tool, stream):
    """The names of the tool calls the SDK got, or the error it raised."""
    messages = [{"role": "user", "content": f"call {tool}"}]
    try:
        if not stream:
            r = client.chat.completions.create(model="auto", messages=messages, tools=TOOLS)
            return {"calls": [c.function.name for c in r.choices[0].message.tool_calls or []]}
        names = []
        for chunk in client.chat.completions.create(
            model="auto", messages=messages, tools=TOOLS, stream=True
        ):
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    if call.function and call.function.name:
                        names.append(call.function.name)
        return {"calls": names}
    except openai.APIStatusError as e:
        code = e.body.get("code") if isinstance(e.body, dict) else None
        return {"status": e.status_code, "code": code}
    except openai.APIError as e:
        return {"error": type(e).__name__, "message": str(e)}


for tool in ["search_docs", "delete_user"]:
    out[f"{tool}_whole"] = ask(tool, False)
    out[f"{tool}_stream"] = ask(tool, True)
print(json.dumps(out))
