"""The official Python `openai` package (from LiteLLM's virtualenv) pointed at the gateway's /openai/v1.

Run by test/openai-compat.e2e-spec.ts: every scenario a team would run on day one, each result printed as one
JSON object on stdout. The script only reports what the SDK saw; the test decides what is right.
Environment: GATEWAY_URL, GATEWAY_KEY, ORGANIZATION_ID, LIMITED_ORGANIZATION_ID.
"""

import json
import os

import openai
from openai import OpenAI

client = OpenAI(base_url=os.environ["GATEWAY_URL"] + "/openai/v1", api_key=os.environ["GATEWAY_KEY"], max_retries=0)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
results = {"sdk_version": openai.__version__}

plain = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello from python"}])
results["plain"] = {"content": plain.choices[0].message.content, "model": plain.model, "total_tokens": plain.usage.total_tokens}

text = ""
usage = None
for chunk in client.chat.completions.create(
    model="claude-3-5-sonnet",
    messages=[{"role": "user", "content": "stream from python"}],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = chunk.usage.total_tokens
results["stream"] = {"content": text, "total_tokens": usage}

# The agent loop: ask, run the tool, give its result back, get the answer.
for model in ("gpt-4o", "claude-3-5-sonnet"):
    messages = [{"role": "user", "content": "weather in Paris?"}]
    asked = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    call = asked.choices[0].message.tool_calls[0]
    messages.append(asked.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18 degrees"})
    answered = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
    results["tools_" + model] = {
        "finish_reason": asked.choices[0].finish_reason,
        "call": {"id": call.id, "name": call.function.name, "arguments": json.loads(call.function.arguments)},
        "answer": answered.choices[0].message.content,
    }

embeddings = client.embeddings.create(model="text-embedding-3-small", input=["one", "two"], dimensions=256)
results["embeddings"] = {"count": len(embeddings.data), "lengths": [len(item.embedding) for item in embeddings.data]}

organization = client.with_options(default_headers={"x-organization-id": os.environ["ORGANIZATION_ID"]})
raw = organization.chat.completions.with_raw_response.create(
    model="organization-default", messages=[{"role": "user", "content": "hello organization"}]
)
results["organization"] = {
    "model_header": raw.headers.get("x-llm-model"),
    "limit_header": raw.headers.get("x-ratelimit-limit-requests"),
    "content": raw.parse().choices[0].message.content,
}

limited = client.with_options(default_headers={"x-organization-id": os.environ["LIMITED_ORGANIZATION_ID"]})
refusal = {}
try:
    for _ in range(3):
        limited.chat.completions.create(model="organization-default", messages=[{"role": "user", "content": "again"}])
except openai.RateLimitError as error:
    refusal = {
        "class": type(error).__name__,
        "status": error.status_code,
        "code": error.code,
        "retry_after": error.response.headers.get("retry-after"),
    }
results["rate_limited"] = refusal

bad = {}
try:
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}], temperature=5)
except openai.BadRequestError as error:
    bad = {"class": type(error).__name__, "status": error.status_code, "code": error.code, "param": error.param, "message": error.message}
results["bad_request"] = bad

print(json.dumps(results))
