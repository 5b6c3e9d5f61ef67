"""Big offline workloads: a JSONL file of requests through the Message Batches API."""
