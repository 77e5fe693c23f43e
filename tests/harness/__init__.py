"""Reusable test harnesses shared by the e2e and integration tests: an emulated Kubernetes API with kubectl
and kopf runners (``k8s.py`` lists its modules), and a test kubelet running Jobs as local processes
(``kubelet.py``)."""
