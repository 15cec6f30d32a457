#!/usr/bin/env python3
"""Makes a semantic-cache replay file from the shared data, deterministically.

Usage: scripts/cache-replay.py DATA_DIR OUT [--mmlu N]

Takes every MMLU question of a fixed stride (N in all, default 1,500) and every first
MT-Bench turn; each becomes a group of four prompts: the question, and three wordings of
it that ask for the same answer (a lead-in, a closing, a rephrased request). The rows
are shuffled with a fixed seed and written as JSON lines with `prompt` and `group`, for
`switchyard eval cache --data OUT`. Distinct MMLU questions often share a stem and
differ in their choices: a cache that serves one for the other is caught as a false hit.
"""
import json
import random
import sys

LEADS = ["Quick question: ", "I'd like some help with this. ", "Please answer the following. "]
CLOSINGS = [" Thanks!", " Any help is appreciated.", " Thank you in advance."]
REQUESTS = ["Can you tell me: {q}", "Help me figure this out: {q}", "I was wondering: {q}"]


def variants(question, rng):
    return [
        question,
        rng.choice(LEADS) + question,
        question + rng.choice(CLOSINGS),
        rng.choice(REQUESTS).format(q=question),
    ]


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    data, out = args[0], args[1]
    count = int(args[args.index("--mmlu") + 1]) if "--mmlu" in args else 1500
    rng = random.Random(7)
    with open(f"{data}/mmlu/dev.jsonl") as f:
        mmlu = [json.loads(line) for line in f if line.strip()]
    stride = max(1, len(mmlu) // count)
    rows = []
    for i, row in enumerate(mmlu[::stride][:count]):
        for prompt in variants(row["prompt"], rng):
            rows.append({"prompt": prompt, "group": f"mmlu-{i}"})
    with open(f"{data}/mtbench/questions.jsonl") as f:
        for line in f:
            if not line.strip():
                continue
            q = json.loads(line)
            turns = q.get("turns") or q.get("prompt") or []
            first = turns[0] if isinstance(turns, list) else turns
            for prompt in variants(first, rng):
                rows.append({"prompt": prompt, "group": f"mtbench-{q.get('question_id', len(rows))}"})
    rng.shuffle(rows)
    with open(out, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"wrote {len(rows)} prompts to {out}")


if __name__ == "__main__":
    main()
