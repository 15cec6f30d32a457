# Accuracy first, in vLLM Semantic Router's syntax (written for Switchyard's
# examples): the subject decides which specialist answers; hard questions outside
# their subjects go to the strongest model with reasoning on.

SIGNAL domain math { description: "mathematics" }

SIGNAL domain law { description: "legal questions" }

SIGNAL domain "computer science" { description: "programming and systems" }

SIGNAL complexity reasoning {
  threshold: 0.1
  hard: { candidates: ["prove the theorem and justify every step", "derive the result from first principles", "compare several designs and defend the trade-offs"] }
  easy: { candidates: ["define the term", "give a one-line answer", "what is the name of"] }
}

MODEL "math-32b" { description: "mathematics specialist" }

MODEL "law-32b" { description: "legal specialist" }

MODEL "code-32b" { description: "programming specialist" }

MODEL "frontier-235b" { description: "strongest general model" }

ROUTE hard_any {
  PRIORITY 150
  WHEN complexity("reasoning:hard")
  MODEL "frontier-235b" (reasoning = true)
}

ROUTE math {
  PRIORITY 200
  WHEN domain("math")
  MODEL "math-32b" (reasoning = true)
}

ROUTE law {
  PRIORITY 200
  WHEN domain("law")
  MODEL "law-32b"
}

ROUTE code {
  PRIORITY 200
  WHEN domain("computer science")
  MODEL "code-32b"
}

ROUTE general {
  PRIORITY 10
  MODEL "frontier-235b"
}

TEST accuracy {
  "What is the integral of x squared from 0 to 3?" -> math
  "Can my landlord keep my deposit if I gave notice on time?" -> law
  "How does a compiler turn a recursive function into a loop with tail-call optimization?" -> code
}
