"""Load testing (ArenaJob ``type: loadtest`` and ``arena run --type loadtest``): one engine for both models.

- ``profile``: what to run — the open model (``targetRPS``: arrivals per second, ramped) or the closed model
  (``concurrency`` / ``vusPerWorker`` virtual users running scenarios back to back), as piecewise-linear curves.
- ``scheduler``: the asyncio drivers. The open model starts every arrival at its time without waiting for
  earlier runs; an arrival that finds the per-worker in-flight cap full is counted as dropped (k6's
  constant-arrival-rate semantics: no coordinated omission); scheduling lag is measured.
- ``instrument``: per provider request latency, TTFT, tokens, cost and error class, from the providers
  themselves (retries off: every attempt is one measured request).
- ``transport``: the providers' HTTP client under load (aiohttp behind the httpx subset they call).
- ``metrics``: HDR histograms and counters, in total and per 1 s bucket; ``coord`` pushes them to Redis every
  second and keeps the ``roster`` (each worker's share of the load, rebalanced when workers join or leave), the
  shared start time, the spend across workers and the stop flag; ``store`` reads it all back and merges the
  histograms, so percentiles are exact over all workers.
- ``thresholds``, ``summary``, ``reports`` + ``charts``: the verdict and summary.json, timeseries.csv, report.html,
  junit.xml.
- ``run`` (what both runtimes share) and ``worker`` (a worker pod's run, then the aggregation); the one-process run
  of ``arena run --type loadtest`` is local/loadtest.py, the controller's part reconcile/loadtest.py.
"""
