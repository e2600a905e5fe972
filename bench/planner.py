#!/usr/bin/env python3
"""planner_node benchmark: plan accuracy, grounding and speed per model and backend (issue 14).

Runs the instruction set bench/planner_instructions.yaml (each item: a context, a request, the
expected plan; scored by planner_node/scoring.py) through each model and backend:

- grounded: the node's schema, ``plan_schema(context)``, with enums of the names and objects present
  and the tools that have something to refer to;
- ungrounded: ``plan_schema(context, grounded=False)``, free text for person and object and every
  tool, so only the prompt keeps the plan to the context.

Two accuracies: of the raw model plan, and of the plan the node runs (the checker's plan, or the
refusal it puts in place of a plan it refuses, plan_to_run; a request that only says stop is one
`stop` step without the model, as in the node). Per model, backend,
grounding and split: both accuracies, ungrounded names (person or object
arguments the context does not hold), say texts that speak an unconsented person's name, checker
refusals, time to first token p50, generation tokens/s (median), plan latency p50 / p99 (the model's
call: prompt to last token), and the peak resident memory of the process that ran the model.

Each model runs in a child process (the script re-invokes itself with the hidden ``--role child``),
so its peak resident memory (ru_maxrss) is its own. A backend that cannot run here (no TensorRT-LLM
on a CPU machine) gets a row with the BackendUnavailable reason instead of numbers. Failures of
tune items are printed (``--show-failures``); held-out items are printed only as totals, so a prompt
can be tuned on the tune split without looking at the held-out answers (they are in the JSON).

    python bench/planner.py                          # 1.5B, 0.5B and 135M; llama_cpp; both splits
    python bench/planner.py --models 1.5b --split tune --grounding grounded --show-failures
    python bench/planner.py --models 0.5b --limit 10 --json /tmp/planner.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runs from a bare checkout too

from humanoid_common.assets import AssetError, model_file  # noqa: E402
from planner_node.checker import plan_to_run  # noqa: E402
from planner_node.llm import BACKENDS, BackendUnavailable, ModelConfig, load_model  # noqa: E402
from planner_node.plan_schema import plan_schema, prompt_messages  # noqa: E402
from planner_node.scoring import SPLITS, Item, load_items, score_plan  # noqa: E402
from planner_node.stop_request import STOP_PLAN, is_stop_request  # noqa: E402

DEFAULT_JSON = REPO / "out" / "bench" / "planner.json"
DEFAULT_INSTRUCTIONS = REPO / "bench" / "planner_instructions.yaml"
#: Short names of the models compared (--models takes these or any asset name / path).
MODELS = {
    "1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    "0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "135m": "SmolLM2-135M-Instruct.Q4_1.gguf",
}
GROUNDINGS = ("grounded", "ungrounded")
WARM_UP_REQUEST = "say hello"  # one untimed plan first: model pages, the prompt prefix cache


@dataclass
class Answer:
    """One item's raw answer in one grounding, with its timing and scores."""

    id: str
    split: str
    grounding: str
    text: str
    correct: bool
    why: str
    ungrounded: list[str]
    unconsented_spoken: bool
    checker_refused: str  # the checker's reason, empty when it accepted the plan
    run_correct: bool  # the plan the node runs (the checked plan or the checker's refusal)
    run_why: str
    prompt_tokens: int
    completion_tokens: int
    first_token_s: float
    total_s: float
    tokens_per_s: float


@dataclass
class Run:
    """One model on one backend: its answers, or why it did not run."""

    backend: str
    model: str
    unavailable: str = ""
    load_s: float = 0.0
    peak_rss_mib: float = 0.0
    answers: list[Answer] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


# --------------------------------------------------------------------------------------------------
# The child: one model, all items, both groundings.


def run_child(args: argparse.Namespace) -> int:
    run = Run(args.backend, args.model)
    items = select_items(args)
    try:
        path = str(model_file(args.model, "model"))
        config = ModelConfig(backend=args.backend, model=args.model, threads=args.threads)
        start = time.perf_counter()
        model = load_model(config, path)
        run.load_s = time.perf_counter() - start
    except (BackendUnavailable, AssetError, ImportError) as error:
        run.unavailable = f"{type(error).__name__}: {error}"
        Path(args.out).write_text(json.dumps(asdict(run)))
        return 0
    try:
        warm = items[0].context if items else None
        if warm is not None:
            model.complete(prompt_messages(warm, WARM_UP_REQUEST), plan_schema(warm))
        groundings = args.grounding.split(",")
        total = len(items) * len(groundings)
        for grounding in groundings:
            for item in items:
                run.answers.append(answer(model, item, grounding))
                done = len(run.answers)
                if done == total or done % max(1, total // 10) == 0:
                    print(f"  {args.model} ({args.backend}): {done}/{total}", file=sys.stderr, flush=True)
    finally:
        model.close()
    run.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps(asdict(run)))
    return 0


def answer(model: Any, item: Item, grounding: str) -> Answer:
    schema = plan_schema(item.context, grounded=grounding == "grounded")
    completion = model.complete(prompt_messages(item.context, item.request), schema)
    score = score_plan(completion.text, item)
    if is_stop_request(item.request):  # the node does not ask the model (the raw answer is still scored)
        run, refused = STOP_PLAN, None
    else:
        run, refused = plan_to_run(completion.text, item.context, item.request)
    run_score = score_plan(run.as_dict(), item)
    return Answer(
        id=item.id,
        split=item.split,
        grounding=grounding,
        text=completion.text,
        correct=score.correct,
        why=score.why,
        ungrounded=list(score.ungrounded),
        unconsented_spoken=score.unconsented_spoken,
        checker_refused="" if refused is None else str(refused),
        run_correct=run_score.correct,
        run_why=run_score.why,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        first_token_s=completion.first_token_s,
        total_s=completion.total_s,
        tokens_per_s=completion.tokens_per_s,
    )


def select_items(args: argparse.Namespace) -> list[Item]:
    items = load_items(args.instructions, args.split)
    if args.ids:
        wanted = set(args.ids.split(","))
        items = [item for item in items if item.id in wanted]
    if args.limit:  # the first N of each split, so a quick run still sees both
        items = [item for split in SPLITS for item in [i for i in items if i.split == split][: args.limit]]
    return items


# --------------------------------------------------------------------------------------------------
# The parent: one child per model and backend, then the table.


def run_model(args: argparse.Namespace, backend: str, model: str) -> Run:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run.json"
        command = [sys.executable, __file__, "--role", "child", "--backend", backend, "--model", model]
        command += ["--out", str(out), "--threads", str(args.threads), "--split", args.split]
        command += ["--grounding", args.grounding, "--instructions", str(args.instructions)]
        command += ["--limit", str(args.limit)] + (["--ids", args.ids] if args.ids else [])
        result = subprocess.run(command, check=False)
        if result.returncode != 0 or not out.exists():
            return Run(
                backend, model, unavailable=f"the child process failed (exit status {result.returncode})"
            )
        data = json.loads(out.read_text())
    answers = [Answer(**entry) for entry in data.pop("answers")]
    return Run(**data, answers=answers)


def summarise(answers: list[Answer]) -> dict[str, Any]:
    n = len(answers)
    right = sum(a.correct for a in answers)
    run_right = sum(a.run_correct for a in answers)
    return {
        "items": n,
        "correct": right,
        "accuracy": right / n if n else float("nan"),
        "run_correct": run_right,
        "run_accuracy": run_right / n if n else float("nan"),
        "ungrounded_names": sum(len(a.ungrounded) for a in answers),
        "unconsented_spoken": sum(a.unconsented_spoken for a in answers),
        "checker_refusals": sum(bool(a.checker_refused) for a in answers),
        "first_token_p50_s": percentile([a.first_token_s for a in answers], 50),
        "tokens_per_s_median": statistics.median([a.tokens_per_s for a in answers]) if n else float("nan"),
        "latency_p50_s": percentile([a.total_s for a in answers], 50),
        "latency_p99_s": percentile([a.total_s for a in answers], 99),
        "prompt_tokens_median": statistics.median([a.prompt_tokens for a in answers]) if n else 0,
    }


def table(runs: list[Run], groundings: list[str], splits: list[str]) -> tuple[list[dict[str, Any]], str]:
    rows, lines = [], []
    header = (
        f"{'backend':<13}{'model':<42}{'grounding':<11}{'split':<8}{'raw plan':>14}{'plan run':>14}"
        f"{'ungr.':>6}{'unc.':>5}{'chk':>5}{'TTFT p50':>9}{'tok/s':>7}{'p50 s':>7}{'p99 s':>7}{'RSS MiB':>8}"
    )
    lines += [header, "-" * len(header)]
    for run in runs:
        if run.unavailable:
            lines.append(f"{run.backend:<13}{run.model:<42}not run: {run.unavailable}")
            rows.append({"backend": run.backend, "model": run.model, "unavailable": run.unavailable})
            continue
        for grounding in groundings:
            for split in splits:
                chosen = [a for a in run.answers if a.grounding == grounding and a.split == split]
                if not chosen:
                    continue
                s = summarise(chosen)
                where = {"backend": run.backend, "model": run.model, "grounding": grounding, "split": split}
                rows.append(where | s | {"peak_rss_mib": run.peak_rss_mib, "load_s": run.load_s})
                accuracy = f"{s['correct']}/{s['items']} {100 * s['accuracy']:5.1f}%"
                run_accuracy = f"{s['run_correct']}/{s['items']} {100 * s['run_accuracy']:5.1f}%"
                lines.append(
                    f"{run.backend:<13}{run.model:<42}{grounding:<11}{split:<8}{accuracy:>14}{run_accuracy:>14}"
                    f"{s['ungrounded_names']:>6}{s['unconsented_spoken']:>5}{s['checker_refusals']:>5}"
                    f"{s['first_token_p50_s']:>9.2f}{s['tokens_per_s_median']:>7.1f}{s['latency_p50_s']:>7.2f}"
                    f"{s['latency_p99_s']:>7.2f}{run.peak_rss_mib:>8.0f}"
                )
    lines.append(
        "raw plan: the model's answer right; plan run: what the node runs (checked plan or the checker's "
        "refusal) right; ungr.: person/object arguments the context does not hold (raw plan); unc.: say "
        "texts with an unconsented name; chk: plans the checker refused"
    )
    return rows, "\n".join(lines)


def failures(runs: list[Run]) -> str:
    """The wrong tune answers (held-out ones are left out on purpose: see the module doc)."""
    lines = []
    for run in runs:
        for a in run.answers:
            if a.split == "tune" and not (a.correct and a.run_correct):
                why = a.why if not a.correct else f"checker: {a.checker_refused}"
                ran = "ran right" if a.run_correct else f"ran wrong: {a.run_why}"
                lines.append(f"{run.model} {a.grounding} {a.id}: {why} ({ran})\n    {a.text}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", default="1.5b,0.5b,135m", help=f"short names ({', '.join(MODELS)}) or assets"
    )
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help=f"of {', '.join(BACKENDS)} (default: all)"
    )
    parser.add_argument("--split", default="all", choices=(*SPLITS, "all"))
    parser.add_argument("--grounding", default=",".join(GROUNDINGS), help="grounded, ungrounded or both")
    parser.add_argument("--limit", type=int, default=0, help="the first N items of each split (0: all)")
    parser.add_argument("--ids", default="", help="only these item ids, comma separated")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for generation (0: all cores)")
    parser.add_argument("--instructions", default=str(DEFAULT_INSTRUCTIONS))
    parser.add_argument("--show-failures", action="store_true", help="print each wrong tune answer")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help=f"output (default {DEFAULT_JSON})")
    parser.add_argument("--role", default="parent", choices=("parent", "child"), help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    groundings = args.grounding.split(",")
    if not set(groundings) <= set(GROUNDINGS):
        parser.error(f"--grounding takes {' and/or '.join(GROUNDINGS)}")
    if args.role == "child":
        return run_child(args)

    backends = args.backends.split(",")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        parser.error(f"unknown backend {unknown[0]!r} (known: {', '.join(BACKENDS)})")
    models = [MODELS.get(name, name) for name in args.models.split(",")]
    started = datetime.now(timezone.utc).isoformat()
    print(f"planner bench: {len(select_items(args))} items, models {', '.join(models)}", flush=True)
    runs = []
    for backend in backends:
        for model in models:
            print(f"{backend} / {model}", flush=True)
            runs.append(run_model(args, backend, model))
    splits = [s for s in SPLITS if args.split in (s, "all")]
    rows, text = table(runs, groundings, splits)
    print()
    print(text)
    if args.show_failures:
        print("\nwrong tune answers:\n" + (failures(runs) or "none"))
    report = {
        "config": {k: v for k, v in vars(args).items() if k not in ("role", "backend", "model", "out")},
        "host": {
            "hostname": socket.gethostname(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
        },
        "started": started,
        "ended": datetime.now(timezone.utc).isoformat(),
        "rows": rows,
        "runs": [asdict(run) for run in runs],
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
