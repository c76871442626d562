"""A small orders service on FastAPI, producing to Kafka through asyncproducer (README.md)."""
