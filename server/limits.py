"""Size limits of a batch beyond what the schema checks, all from settings (413 past them)."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from fadewatch.protocol.rollouts import MAX_STEP_BYTES
from fadewatch.server.schemas import StepBatch
from fadewatch.server.settings import ServerSettings

__all__ = ["check_batch", "parse_batch"]


def parse_batch(body: bytes, content_type: str | None) -> StepBatch:
    """Validate a StepBatch straight from JSON bytes (NaN and Infinity literals accepted)."""
    if content_type is not None and not content_type.split(";")[0].strip().lower().endswith("json"):
        raise HTTPException(415, "send the batch as application/json (optionally gzip-encoded)")
    if not body:
        raise HTTPException(422, "empty body: send {\"records\": [...]}")
    try:
        return StepBatch.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False, include_url=False)]
        ) from None


def _too_large(what: str, value: int, limit: int, setting: str) -> HTTPException:
    return HTTPException(
        413, f"{what} is {value}, over the limit of {limit} (server setting FADEWATCH_{setting})"
    )


def check_batch(batch: StepBatch, s: ServerSettings) -> None:
    n = len(batch.records)
    if n > s.max_batch_records:
        raise _too_large("the batch's record count", n, s.max_batch_records, "MAX_BATCH_RECORDS")
    for record in batch.records:
        where = f"step {record.step}: "
        if len(record.scalars) > s.max_scalars_per_record:
            raise _too_large(where + "the scalar count", len(record.scalars), s.max_scalars_per_record, "MAX_SCALARS_PER_RECORD")
        if len(record.histograms) > s.max_histograms_per_record:
            raise _too_large(where + "the histogram count", len(record.histograms), s.max_histograms_per_record, "MAX_HISTOGRAMS_PER_RECORD")
        for name, h in record.histograms.items():
            if len(h.counts) > s.max_histogram_bins:
                raise _too_large(where + f"histogram {name!r} bin count", len(h.counts), s.max_histogram_bins, "MAX_HISTOGRAM_BINS")
        samples = record.samples or ()
        if len(samples) > s.max_samples_per_record:
            raise _too_large(where + "the sample count", len(samples), s.max_samples_per_record, "MAX_SAMPLES_PER_RECORD")
        for sample in samples:
            if len(sample.text) > s.max_sample_chars:
                raise _too_large(where + "a sample's length", len(sample.text), s.max_sample_chars, "MAX_SAMPLE_CHARS")
        chars = sum(g.text_chars() for g in record.rollouts or ())
        if chars > MAX_STEP_BYTES:
            raise HTTPException(413, f"{where}the rollouts hold {chars} characters of text, over the limit of "
                                f"{MAX_STEP_BYTES} a step (fadewatch.protocol.rollouts.MAX_STEP_BYTES)")
