"""Load testing (ArenaJob ``type: loadtest`` and ``arena run --type loadtest``): one engine for both models.

- ``profile``: what to run — the open model (``targetRPS``: arrivals per second, ramped) or the closed model
  (``concurrency`` / ``vusPerWorker`` virtual users running scenarios back to back), as piecewise-linear curves.
- ``scheduler``: the asyncio drivers. The open model starts every arrival at its time without waiting for
  earlier runs; an arrival that finds the per-worker in-flight cap full is counted as dropped (k6's
  constant-arrival-rate semantics: no coordinated omission); scheduling lag is measured.
- ``instrument``: per provider request latency, TTFT, tokens, cost and error class, from the providers
  themselves (retries off: every attempt is one measured request).
- ``metrics``: HDR histograms and counters, in total and per 1 s bucket; ``coord`` pushes them to Redis every
  second and keeps the roster (each worker's share of the load, rebalanced when workers join or leave), the shared
  start time, the spend across workers and the stop flag; ``merge`` rebuilds exact percentiles over all workers.
- ``thresholds``, ``summary``, ``reports``: the verdict and summary.json, timeseries.csv, report.html, junit.xml.
- ``worker`` and ``local``: a worker pod's run (with aggregation) and the one-process run of ``arena run``.
"""
