"""The conversation engine: PromptKit bundles, providers, executor, assertions. No Kubernetes, no Redis."""
