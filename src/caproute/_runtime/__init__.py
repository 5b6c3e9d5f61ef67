"""What every shell shares at run time: the live router and its memory, the drivers of the
core's flow, log masking and tracing."""

from .. import _logs  # noqa: F401  (masking on every caproute logger before any record)
