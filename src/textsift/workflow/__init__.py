"""Workflows: named steps wired by references, each cached by a fingerprint of what it depends on."""

from textsift.workflow.results import Artifact, ModelArtifact, PredictionsArtifact, ReportArtifact, TokenizerArtifact
from textsift.workflow.steps import StepDef, step

__all__ = ["Artifact", "ModelArtifact", "PredictionsArtifact", "ReportArtifact", "StepDef", "TokenizerArtifact", "step"]
