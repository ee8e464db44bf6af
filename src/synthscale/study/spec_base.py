"""Pieces every part of the study spec shares: strict models (unknown fields are errors)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A spec section: unknown fields are errors, and assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
