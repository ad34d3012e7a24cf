"""`edgekit matrix plan.yaml`: models x targets x recipes x devices, built, validated and benched in one run.

    from edgekit.matrix import load_plan, run_matrix
    plan = load_plan("plan.yaml")                   # every check before work; cells with skip reasons
    result = run_matrix(plan)                       # records.jsonl, report.md, report.html under plan.out

Modules: `plan` (the YAML schema, its checks, the expansion into cells), `cells` (what one build and one
device stage do, the same for every executor), `records` (append-only JSONL, resume), `executors` (the local
process pool), `ray_executor` (cells as Ray tasks, devices as Ray custom resources), `report` and `chart`
(Markdown + self-contained HTML, accuracy-vs-latency scatter with the Pareto front), `run` (the whole run).
"""
