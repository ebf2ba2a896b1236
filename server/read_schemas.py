"""Answers of API v1's reads: series, histogram matrices and samples (docs/wire-format.md)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["SeriesPoints", "SeriesOut", "HistogramMatrix", "SampleOut", "SampleList"]


class SeriesPoints(BaseModel):
    steps: list[int]
    values: list[float | None]
    min: list[float | None]
    max: list[float | None]


class SeriesOut(BaseModel):
    run_id: int
    downsampled: bool
    last_step: int | None
    series: dict[str, SeriesPoints]


class HistogramMatrix(BaseModel):
    run_id: int
    name: str
    steps: list[int] = Field(description="last step merged into each column")
    first_steps: list[int] = Field(description="first step merged into each column")
    edges: list[float]
    labels: list[str] | None
    counts: list[list[float]] = Field(description="one row of bin counts per column")
    underflow: list[float]
    overflow: list[float]
    count: list[float]
    mean: list[float | None]
    min: list[float | None]
    max: list[float | None]
    quantiles: dict[str, list[float | None]]


class SampleOut(BaseModel):
    step: int
    text: str
    group: str | int | None
    reward: float | None
    advantage: float | None


class SampleList(BaseModel):
    run_id: int
    samples: list[SampleOut] = Field(description="newest step first, in the order they were logged")
