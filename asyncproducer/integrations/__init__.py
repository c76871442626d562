"""Integrations with the frameworks and tools around the producer, each an optional extra:

- :mod:`asyncproducer.integrations.fastapi` (``asyncproducer[fastapi]``): a lifespan
  and a dependency for FastAPI and Starlette;
- :mod:`asyncproducer.integrations.aiohttp` (``asyncproducer[aiohttp]``): a cleanup
  context and an app key for aiohttp;
- :mod:`asyncproducer.integrations.prometheus` (``asyncproducer[prometheus]``): the
  producer's metrics as a Prometheus collector;
- :mod:`asyncproducer.integrations.opentelemetry` (``asyncproducer[opentelemetry]``):
  a span per record that lasts until the broker acknowledges it, and W3C trace context
  in the record's headers.

Nothing here is imported by ``import asyncproducer``.
"""
