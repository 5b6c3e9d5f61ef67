"""Big offline workloads: a JSONL file of requests through the Message Batches API."""

from .. import _logs  # noqa: F401  (masking on every caproute logger before any record)
