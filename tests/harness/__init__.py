"""Reusable test harnesses shared by the e2e and integration tests (see ``k8s.py``)."""
