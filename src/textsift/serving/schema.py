"""The request and response bodies of ``POST /predict`` (also the OpenAPI schema at ``/docs``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr


class PredictRequest(BaseModel):
    """Texts to classify (and, for a pair model, their second texts), with output options."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["Who wrote Hamlet ?"], "top_k": 2}]})

    texts: list[StrictStr] = Field(..., min_length=1, description="The texts, at most the server's max_request_texts.")
    pairs: list[StrictStr] | None = Field(None, description="Pair models: the second text of each text, one per text.")
    top_k: StrictInt | None = Field(None, ge=1, description="Give the k most probable labels instead of every label's probability.")
    raw_scores: StrictBool = Field(False, description="Also give the model's raw scores (logits, before calibration and softmax).")
    truncate: StrictBool = Field(True, description="Cut texts longer than the model's maximum (true), or refuse them with 422 (false).")


class LabelProbability(BaseModel):
    label: str
    probability: float


class Prediction(BaseModel):
    """One text's prediction: ``label`` (single-label) or ``labels`` (multilabel, chosen by the model's thresholds)."""

    label: str | None = None
    labels: list[str] | None = None
    probabilities: dict[str, float] | None = Field(None, description="Every label's probability (without top_k).")
    top_k: list[LabelProbability] | None = Field(None, description="The k most probable labels (with top_k).")
    raw_scores: dict[str, float] | None = Field(None, description="Every label's raw score (with raw_scores).")
    truncated: bool = Field(False, description="The text was longer than the model's maximum and was cut.")


class PredictResponse(BaseModel):
    """One prediction per text, in the order of the request's texts."""

    predictions: list[Prediction]
    label_names: list[str]
    multilabel: bool
