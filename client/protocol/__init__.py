"""fadewatch.protocol: what the hook, the server and the dashboard must agree on, written once.

numpy only (no pydantic, no HTTP): the server's schemas and settings, the dashboard and the
hook all import their rules and limits from here, never the other way round.

    metrics.py   the metric registry: every name the hook emits, its meaning, unit, chart
                 and the direction that is bad; ``metric(name)`` fails loudly on others
    names.py     what a metric name and a project or run name may be
    limits.py    sizes and counts: name length, error text, batch and read limits
    answers.py   reading an HTTP answer: retriable statuses, Retry-After, error details
    rollouts.py  the rollouts' budgets and text limits, the sign of an advantage, intervals,
                 prompt ids, cutting a long text in the middle
"""
