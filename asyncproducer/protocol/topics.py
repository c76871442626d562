"""Kafka's rule for topic names (``org.apache.kafka.common.internals.Topic``): the
client checks it before a name joins its metadata requests, the fake broker before it
creates a topic."""

from __future__ import annotations

import re

from asyncproducer.errors import InvalidTopicError

_LEGAL_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")
"""Kafka's rule for topic names (``org.apache.kafka.common.internals.Topic``)."""


def topic_name_problem(topic: object) -> str | None:
    """What makes ``topic`` a name Kafka refuses (None: it accepts it)."""
    if not isinstance(topic, str):
        return f"a topic name is a str, got {type(topic).__name__} {topic!r}"
    if not _LEGAL_TOPIC_NAME.fullmatch(topic) or topic in (".", ".."):
        return (
            f"topic {topic!r} is not a legal name: 1 to 249 characters from "
            "[a-zA-Z0-9._-], and not '.' or '..'"
        )
    return None


def check_topic_name(topic: object) -> None:
    """Raise InvalidTopicError unless ``topic`` is a name Kafka accepts. Checked before a
    topic joins the metadata requests: a name the request cannot encode (not a str) would
    break every later refresh, and one the broker refuses fails clearer here."""
    problem = topic_name_problem(topic)
    if problem is not None:
        raise InvalidTopicError(problem)
