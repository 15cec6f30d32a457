# Three named profiles in vLLM Semantic Router's syntax (written for Switchyard's
# examples), in the style of their built-in "mixture of models" recipe: clients pick
# a profile by model name through entry points. Each profile scores how much
# deliberation a request needs and routes on the bands of that score.

SIGNAL keyword simple_request { operator: "OR", keywords: ["quick answer", "briefly", "one sentence"] }

SIGNAL keyword deliberate_request { operator: "OR", keywords: ["root cause", "trade-offs", "step by step", "prove"] }

SIGNAL keyword verify_request { operator: "OR", keywords: ["cite sources", "fact-check", "verify"] }

SIGNAL context long_input { min_tokens: "6K", max_tokens: "128K" }

PROJECTION score effort {
  method: "weighted_sum"
  inputs: [{ type: "keyword", name: "simple_request", weight: -0.4, value_source: "confidence" }, { type: "keyword", name: "deliberate_request", weight: 0.7, value_source: "confidence" }, { type: "keyword", name: "verify_request", weight: 0.4, value_source: "confidence" }, { type: "context", name: "long_input", weight: 0.3 }]
}

PROJECTION mapping effort_band {
  source: "effort"
  method: "threshold_bands"
  calibration: { method: "sigmoid_distance", slope: 10 }
  outputs: [{ name: "direct", lt: 0.3 }, { name: "deliberate", gte: 0.3 }]
}

MODEL "fast-8b" { description: "fast, cheap" }

MODEL "mid-32b" { description: "balanced" }

MODEL "frontier-235b" { description: "strongest, slowest" }

# The top-level profile: requests for `auto` use the balanced middle model.
ROUTE auto_default {
  PRIORITY 1
  MODEL "mid-32b"
}

RECIPE balance (description = "quality, speed and cost weighed together") {
  ROUTE balance_deliberate {
    PRIORITY 200
    WHEN projection("deliberate")
    MODEL "frontier-235b" (reasoning = true)
  }

  ROUTE balance_direct {
    PRIORITY 100
    WHEN projection("direct")
    MODEL "mid-32b"
  }
}

RECIPE speed (description = "lowest latency first") {
  ROUTE speed_deliberate {
    PRIORITY 200
    WHEN projection("deliberate") AND context("long_input")
    MODEL "mid-32b"
  }

  ROUTE speed_rest {
    PRIORITY 10
    MODEL "fast-8b"
  }
}

RECIPE quality (description = "the strongest model whenever it may help") {
  ROUTE quality_all {
    PRIORITY 10
    MODEL "frontier-235b" (reasoning = true)
  }
}

ENTRYPOINT balance_names { model_names: ["mom/balance", "auto-balance"], recipe: "balance" }

ENTRYPOINT speed_names { model_names: ["mom/speed"], recipe: "speed" }

ENTRYPOINT quality_names { model_names: ["mom/quality"], recipe: "quality" }

TEST profiles {
  "find the root cause of this outage, step by step" -> balance_deliberate
  "one sentence: what is HTTP?" -> balance_direct
  "what is HTTP?" -> speed_rest
  "what is HTTP?" -> quality_all
}
