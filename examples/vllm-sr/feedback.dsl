# Learning from the conversation in vLLM Semantic Router's syntax (written for
# Switchyard's examples): a user who says the last answer was wrong (the
# user_feedback signal reads the turn after an answer; the keyword list catches a
# correction in a single prompt), or asks the same thing again, is sent to a
# stronger model.

SIGNAL user_feedback wrong_answer { description: "the user says the last answer was wrong" }

SIGNAL reask asked_again {
  description: "the user repeats an earlier question"
  threshold: 0.6
  lookback_turns: 3
}

SIGNAL keyword correction { operator: "OR", keywords: ["that's wrong", "wrong answer", "try again"] }

SIGNAL keyword code { operator: "OR", keywords: ["rust", "python", "sql"] }

PROJECTION score recovery {
  method: "weighted_sum"
  inputs: [{ type: "user_feedback", name: "wrong_answer", weight: 0.6 }, { type: "keyword", name: "correction", weight: 0.5, value_source: "confidence" }, { type: "reask", name: "asked_again", weight: 0.5, value_source: "confidence" }]
}

PROJECTION mapping recovery_band {
  source: "recovery"
  method: "threshold_bands"
  outputs: [{ name: "fine", lt: 0.4 }, { name: "needs_recovery", gte: 0.4 }]
}

MODEL "small-8b" { description: "first answers" }

MODEL "large-70b" { description: "second opinions" }

ROUTE recover (description = "the last answer did not help") {
  PRIORITY 300
  WHEN projection("needs_recovery")
  MODEL "large-70b" (reasoning = true)
}

ROUTE code {
  PRIORITY 200
  WHEN keyword("code") AND projection("fine")
  MODEL "small-8b"
}

ROUTE general {
  PRIORITY 100
  WHEN projection("fine")
  MODEL "small-8b"
}

TEST feedback {
  "that's wrong, the answer should be 42" -> recover
  "how do I sort a list in python?" -> code
  "tell me about the moon" -> general
}
