# Cost, latency and quality traded per route in vLLM Semantic Router's syntax
# (written for Switchyard's examples): model cards carry prices and quality scores,
# routes weigh them with the multi_factor algorithm, and a budget score moves cheap
# requests to a cost-first route.

SIGNAL keyword budget_words { operator: "OR", keywords: ["cheap", "budget", "low cost", "quick"] }

SIGNAL keyword quality_words { operator: "OR", keywords: ["carefully", "thorough", "production", "exact"] }

SIGNAL context long_prompt { min_tokens: "4K", max_tokens: "128K" }

PROJECTION score cost_pressure {
  method: "weighted_sum"
  inputs: [{ type: "keyword", name: "budget_words", weight: 0.6, value_source: "confidence" }, { type: "keyword", name: "quality_words", weight: -0.6, value_source: "confidence" }, { type: "context", name: "long_prompt", weight: 0.2 }]
}

PROJECTION mapping cost_band {
  source: "cost_pressure"
  method: "threshold_bands"
  outputs: [{ name: "quality_first", lt: -0.2 }, { name: "balanced", gte: -0.2, lt: 0.3 }, { name: "cost_first", gte: 0.3 }]
}

MODEL "small-8b" {
  description: "fast and cheap"
  quality_score: 0.55
  pricing: { prompt_per_1m: 0.05, completion_per_1m: 0.2 }
}

MODEL "mid-32b" {
  description: "balanced"
  quality_score: 0.72
  pricing: { prompt_per_1m: 0.3, completion_per_1m: 1.2 }
}

MODEL "large-235b" {
  description: "strongest"
  quality_score: 0.9
  pricing: { prompt_per_1m: 2.0, completion_per_1m: 8.0 }
}

ROUTE quality_first {
  PRIORITY 300
  WHEN projection("quality_first")
  MODEL "large-235b", "mid-32b"
  ALGORITHM multi_factor { weights: { quality: 0.8, latency: 0.1, cost: 0.1 } }
}

ROUTE cost_first {
  PRIORITY 200
  WHEN projection("cost_first")
  MODEL "small-8b", "mid-32b"
  ALGORITHM multi_factor { minimum_candidates: 1, weights: { cost: 0.7, latency: 0.2, quality: 0.1 } }
}

ROUTE balanced {
  PRIORITY 100
  WHEN projection("balanced")
  MODEL "mid-32b", "small-8b", "large-235b"
  ALGORITHM multi_factor { weights: { quality: 0.45, latency: 0.25, cost: 0.15, load: 0.15 } }
}

TEST objectives {
  "review this migration carefully before production" -> quality_first
  "give me a cheap quick answer: what is DNS?" -> cost_first
  "what is DNS?" -> balanced
}
