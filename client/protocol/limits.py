"""Every size and count the hook, the server and the dashboard must agree on.

The server's wire schemas take their hard bounds from here, and its settings their
defaults (an operator may lower those; the hook and the dashboard stay within the
defaults). A number derived from others is derived here, once.
"""

from __future__ import annotations

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_ERROR_CHARS",
    "MAX_STEP",
    "MAX_BODY_BYTES",
    "MAX_BATCH_RECORDS",
    "MAX_SCALARS_PER_RECORD",
    "MAX_HISTOGRAMS_PER_RECORD",
    "MAX_HISTOGRAM_BINS",
    "MAX_SAMPLES_PER_RECORD",
    "MAX_SAMPLE_CHARS",
    "MAX_CONFIG_BYTES",
    "MAX_KEYS_PER_REQUEST",
    "MAX_KEYS_CHARS",
    "MAX_HISTOGRAMS_PER_READ",
    "MAX_HISTOGRAM_NAMES_CHARS",
    "DEFAULT_MAX_POINTS",
    "MAX_POINTS",
]

# Names: metric names, project and run names, histogram bin labels.
MAX_NAME_LENGTH = 200
# What ended a failed or crashed run (the run's `error`): the server keeps this much.
MAX_ERROR_CHARS = 2_000
# Steps are stored as signed 64-bit integers; this leaves room for arithmetic on them.
MAX_STEP = 2**62

# Writes: what one request may carry (413 past them).
MAX_BODY_BYTES = 64 * 1024 * 1024  # after gzip decoding
MAX_BATCH_RECORDS = 10_000
MAX_SCALARS_PER_RECORD = 2_000
MAX_HISTOGRAMS_PER_RECORD = 64
MAX_HISTOGRAM_BINS = 4_096
MAX_SAMPLES_PER_RECORD = 64
MAX_SAMPLE_CHARS = 20_000
MAX_CONFIG_BYTES = 256 * 1024  # a run's config, as JSON

# Reads: GET /runs/{id}/series.
MAX_KEYS_PER_REQUEST = 100
# The `keys` query: MAX_KEYS_PER_REQUEST names of the longest length, comma-separated.
MAX_KEYS_CHARS = MAX_KEYS_PER_REQUEST * (MAX_NAME_LENGTH + 1) - 1
# Reads: GET /runs/{id}/histograms adds up to this many histograms (name=a,b,...).
MAX_HISTOGRAMS_PER_READ = 8
MAX_HISTOGRAM_NAMES_CHARS = MAX_HISTOGRAMS_PER_READ * (MAX_NAME_LENGTH + 1) - 1
DEFAULT_MAX_POINTS = 1_000  # points per series when the request names none
MAX_POINTS = 20_000  # the most points per series one answer holds
