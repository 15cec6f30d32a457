# An agent-aware policy in vLLM Semantic Router's syntax (written for Switchyard's
# examples). Conversation shape (tool definitions, tool calls and completed tool
# cycles, images, multi-turn) and text structure feed an "agentic pressure" score;
# tiers put images first, then agent loops, then the rest.

SIGNAL conversation has_images {
  feature: { source: { type: "image_content" }, type: "exists" }
}

SIGNAL conversation has_tools {
  feature: { source: { type: "tool_definition" }, type: "count" }
  predicate: { gte: 1 }
}

SIGNAL conversation tool_calls_made {
  feature: { source: { type: "assistant_tool_call" }, type: "count" }
  predicate: { gte: 1 }
}

SIGNAL conversation tool_cycles_done {
  feature: { source: { type: "assistant_tool_cycle" }, type: "count" }
  predicate: { gte: 1 }
}

SIGNAL conversation long_session {
  feature: { source: { role: "user", type: "message" }, type: "count" }
  predicate: { gte: 3 }
}

SIGNAL structure numbered_steps {
  feature: { source: { pattern: "(?m)^\\s*\\d+\\.\\s+", type: "regex" }, type: "exists" }
}

SIGNAL keyword agent_words {
  operator: "OR"
  keywords: ["run the tests", "iterate until", "use the tool", "step by step plan"]
}

PROJECTION score agentic_pressure {
  method: "weighted_sum"
  inputs: [{ type: "conversation", name: "has_tools", weight: 0.25 }, { type: "conversation", name: "tool_calls_made", weight: 0.2 }, { type: "conversation", name: "tool_cycles_done", weight: 0.2 }, { type: "conversation", name: "long_session", weight: 0.1 }, { type: "structure", name: "numbered_steps", weight: 0.1 }, { type: "keyword", name: "agent_words", weight: 0.45, value_source: "confidence" }]
}

PROJECTION mapping agentic_band {
  source: "agentic_pressure"
  method: "threshold_bands"
  outputs: [{ name: "chat", lt: 0.4 }, { name: "agent_loop", gte: 0.4 }]
}

MODEL "local/vision" { description: "image understanding" }

MODEL "cloud/agent" { description: "tool-use specialist" }

MODEL "cloud/chat" { description: "general chat" }

ROUTE vision {
  PRIORITY 500
  TIER 1
  WHEN conversation("has_images")
  MODEL "local/vision"
}

ROUTE agentic {
  PRIORITY 400
  TIER 2
  WHEN projection("agent_loop") AND NOT conversation("has_images")
  MODEL "cloud/agent"
}

ROUTE chat {
  PRIORITY 100
  TIER 3
  MODEL "cloud/chat"
}

TEST agent {
  "iterate until the build passes, use the tool to run the tests" -> agentic
  "what's a good name for a cat?" -> chat
}
