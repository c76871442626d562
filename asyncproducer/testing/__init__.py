"""Test helpers for applications that use asyncproducer (and for asyncproducer's own tests).

:mod:`asyncproducer.testing.tansu` starts a real Kafka-compatible broker; the in-process
fake cluster, ``MockProducer`` and the pytest plugin arrive with the testing issue.
"""
