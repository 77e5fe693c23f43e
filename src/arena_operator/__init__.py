"""arena-operator: PromptKit Arena evaluations, load tests and data generation on Kubernetes."""

__version__ = "0.1.0"
