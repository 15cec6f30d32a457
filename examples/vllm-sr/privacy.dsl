# A privacy-first policy in vLLM Semantic Router's syntax (written for Switchyard's
# examples; convert with `switchyard import vllm-sr examples/vllm-sr/privacy.dsl`).
# Personal data, secrets and local-only requests stay on the on-prem model; a risk
# score made of those signals decides, and its bands are what routes read.

SIGNAL pii personal_data {
  threshold: 0.6
  pii_types_allowed: ["EMAIL_ADDRESS"]
}

SIGNAL keyword secrets {
  operator: "OR"
  method: "regex"
  keywords: ["\\bapi[_ -]?key\\b", "\\bpassword\\b", "\\bsk-[A-Za-z0-9]{8,}\\b"]
}

SIGNAL keyword local_only {
  operator: "OR"
  keywords: ["keep this local", "do not send to the cloud", "on-prem only"]
}

SIGNAL keyword public_info {
  operator: "OR"
  keywords: ["public information", "publicly documented"]
}

PROJECTION score privacy_risk {
  method: "weighted_sum"
  inputs: [{ type: "pii", name: "personal_data", weight: 0.8 }, { type: "keyword", name: "secrets", weight: 0.9, value_source: "confidence" }, { type: "keyword", name: "local_only", weight: 0.6 }, { type: "keyword", name: "public_info", weight: -0.5 }]
}

PROJECTION mapping privacy_band {
  source: "privacy_risk"
  method: "threshold_bands"
  calibration: { method: "sigmoid_distance", slope: 10 }
  outputs: [{ name: "cloud_ok", lt: 0.5 }, { name: "keep_local", gte: 0.5 }]
}

MODEL "onprem/guarded" { description: "on-prem model; nothing it sees leaves the site" }

MODEL "cloud/general" { description: "hosted general model" }

ROUTE private_data (description = "personal data, secrets and local-only requests stay on-prem") {
  PRIORITY 300
  WHEN projection("keep_local")
  MODEL "onprem/guarded"
}

ROUTE general (description = "everything else may use the hosted model") {
  PRIORITY 100
  WHEN projection("cloud_ok")
  MODEL "cloud/general"
}

TEST privacy {
  "my password is hunter2, why does login fail?" -> private_data
  "keep this local: summarize our incident notes" -> private_data
  "call me at +1 415 555 0199 about my claim number 4711" -> private_data
  "what is the capital of Portugal?" -> general
  "the API key rotation schedule is public information, summarize it" -> general
}
