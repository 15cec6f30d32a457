"""Drives a Switchyard gateway with the official OpenAI and Anthropic Python SDKs, once
per model: `oa` is served by an OpenAI-compatible engine, `an` by an engine speaking
Anthropic's Messages API.

Usage: providers_client.py BASE_URL. Prints one JSON object, keyed by model, with
what the SDKs saw.
"""
import json
import sys

import anthropic
import openai

base = sys.argv[1]
oai = openai.OpenAI(base_url=f"{base}/v1", api_key="sdk-key", max_retries=0)
ant = anthropic.Anthropic(base_url=base, api_key="sdk-key", max_retries=0)
system = "You answer questions about programs. " * 30
weather = {"type": "object", "properties": {"city": {"type": "string"}}}
out = {}

for model in ["oa", "an"]:
    seen = {}

    # Chat Completions, whole and streamed.
    chat = oai.chat.completions.create(
        model=model, max_tokens=50,
        messages=[{"role": "system", "content": system},
                  {"role": "user", "content": "How do I compile a Rust program?"}])
    seen["chat_text"] = chat.choices[0].message.content
    seen["chat_finish"] = chat.choices[0].finish_reason
    pieces, usage = [], None
    for chunk in oai.chat.completions.create(
            model=model, max_tokens=50, stream=True, stream_options={"include_usage": True},
            messages=[{"role": "system", "content": system},
                      {"role": "user", "content": "How do I compile a Rust program?"}]):
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        if chunk.usage is not None:
            usage = chunk.usage
    seen["chat_stream_text"] = "".join(pieces)
    seen["chat_stream_cached"] = usage.prompt_tokens_details.cached_tokens

    # Responses: three turns chained by previous_response_id, the third streamed, then
    # a fourth through the SDK's stream helper; read back, listed and deleted.
    r1 = oai.responses.create(model=model, instructions=system,
                              input="Why does my build fail?", max_output_tokens=50)
    r2 = oai.responses.create(model=model, previous_response_id=r1.id,
                              input=[{"role": "user", "content": "What about tests?"}],
                              tools=[{"type": "function", "name": "get_weather",
                                      "parameters": weather, "strict": False}],
                              max_output_tokens=50)
    deltas, r3 = [], None
    for event in oai.responses.create(model=model, previous_response_id=r2.id,
                                      input="And benchmarks?", max_output_tokens=50,
                                      stream=True):
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.completed":
            r3 = event.response
    with oai.responses.stream(model=model, previous_response_id=r3.id,
                              input="Thanks.", max_output_tokens=50) as stream:
        helper_text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        r4 = stream.get_final_response()
    seen["responses"] = {
        "texts": [r1.output_text, r2.output_text, "".join(deltas), r4.output_text],
        "streamed_final_text": r3.output_text,
        "helper_text": helper_text,
        "statuses": [r1.status, r2.status, r3.status, r4.status],
        "previous": [r2.previous_response_id == r1.id, r3.previous_response_id == r2.id,
                     r4.previous_response_id == r3.id],
        "input_tokens": [r.usage.input_tokens for r in (r1, r2, r3, r4)],
        "cached": [r.usage.input_tokens_details.cached_tokens for r in (r1, r2, r3, r4)],
    }
    got = oai.responses.retrieve(r3.id)
    seen["retrieved"] = got.output_text == r3.output_text
    items = oai.responses.input_items.list(r4.id, order="asc")
    seen["input_items"] = [getattr(i, "role", i.type) for i in items.data]
    oai.responses.delete(r1.id)
    try:
        oai.responses.retrieve(r1.id)
        seen["after_delete"] = None
    except openai.NotFoundError as e:
        seen["after_delete"] = e.status_code
    try:
        oai.responses.create(model=model, previous_response_id=r1.id, input="again")
        seen["chain_after_delete"] = None
    except openai.NotFoundError as e:
        seen["chain_after_delete"] = e.status_code

    # Anthropic's Messages: whole with a tool round trip in its history, streamed,
    # and counted.
    history = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                           "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": "18C"},
                                     {"type": "text", "text": "Is that warm?"}]},
    ]
    tools = [{"name": "get_weather", "description": "Weather of a city", "input_schema": weather}]
    cached_system = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
    message = ant.messages.create(model=model, max_tokens=50, system=cached_system,
                                  tools=tools, messages=history)
    seen["messages_text"] = "".join(b.text for b in message.content if b.type == "text")
    seen["messages_stop"] = message.stop_reason
    with ant.messages.stream(model=model, max_tokens=50, system=cached_system, tools=tools,
                             messages=history) as stream:
        seen["messages_stream_text"] = "".join(stream.text_stream)
        final = stream.get_final_message()
    seen["messages_stream_cache_read"] = final.usage.cache_read_input_tokens
    seen["count"] = ant.messages.count_tokens(model=model, system=cached_system, tools=tools,
                                              messages=history).input_tokens
    out[model] = seen

print(json.dumps(out))
