"""Assessment results (each keeps the protocol id and version it was taken under) and the stills
of video goniometry."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, and_
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from telerehab.accounts.models import Patient, User
from telerehab.careplans.models import Episode, Visit
from telerehab.db_types import UTCDateTime
from telerehab.extensions import db


class AssessmentResult(db.Model):
    """One result as entered. Never deleted or edited in place: a correction is a new row that the
    old one points to (superseded_by_id), and a result entered in error is withdrawn. Only results in
    force count in lists, trends and interpretation; the others stay for the history and the audit."""

    __tablename__ = "assessment_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"), index=True)
    protocol_id: Mapped[str] = mapped_column(String(60))
    protocol_version: Mapped[int] = mapped_column(Integer)
    variant: Mapped[str] = mapped_column(String(10))  # in_clinic or video: the protocol variant used
    modality: Mapped[str | None] = mapped_column(String(10))  # the visit's modality, when taken at a visit
    # Why the variant differs from the visit's modality (e.g. a clinic test done on camera).
    override_reason: Mapped[str | None] = mapped_column(Text)
    series_key: Mapped[str] = mapped_column(String(200), default="")  # e.g. side=left;motion=active
    inputs: Mapped[dict] = mapped_column(JSON)  # the raw inputs, as entered
    checklist: Mapped[dict | None] = mapped_column(JSON)  # camera checklist item id -> ticked (video)
    score: Mapped[float] = mapped_column(Float)
    units: Mapped[str] = mapped_column(String(40))
    method: Mapped[str] = mapped_column(String(20))  # entered, or goniometry
    # Who took the measure and when; a correction keeps both (its own author and time are on the
    # row it supersedes), so that the trend still plots the test on the day it was taken.
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when a correction replaces this result: the new row, when, who corrected it and why.
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("assessment_results.id"), unique=True)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    superseded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    superseded_reason: Mapped[str | None] = mapped_column(Text)
    # Set when the result was entered in error and withdrawn.
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)

    patient: Mapped[Patient] = relationship()
    episode: Mapped[Episode] = relationship()
    visit: Mapped[Visit | None] = relationship()
    recorded_by: Mapped[User] = relationship(foreign_keys=[recorded_by_id])
    superseded_by_user: Mapped[User | None] = relationship(foreign_keys=[superseded_by_user_id])
    withdrawn_by: Mapped[User | None] = relationship(foreign_keys=[withdrawn_by_id])

    @hybrid_property
    def in_force(self) -> bool:
        return self.superseded_by_id is None and self.withdrawn_at is None

    @in_force.inplace.expression
    @classmethod
    def _in_force_expression(cls):
        return and_(cls.superseded_by_id.is_(None), cls.withdrawn_at.is_(None))

    __table_args__ = (
        Index("ix_assessment_results_patient_protocol", "patient_id", "protocol_id", "recorded_at"),
    )


class GoniometryCapture(db.Model):
    """A still of the patient and its three landmarks; the result it produced keeps the variant and
    the camera checklist. The image file is kept only with the patient's telehealth consent in force."""

    __tablename__ = "goniometry_captures"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    image_path: Mapped[str | None] = mapped_column(String(300))  # relative to STORAGE_DIR
    content_type: Mapped[str] = mapped_column(String(20))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    captured_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Filled when the therapist marks the still: {"axis": [x, y], "stationary": [...], "moving": [...]}
    landmarks: Mapped[dict | None] = mapped_column(JSON)
    # What the pose model proposed, if asked: {"protocol_id", "side", "points": {name: [x, y]}}
    proposed_landmarks: Mapped[dict | None] = mapped_column(JSON)
    landmark_source: Mapped[str | None] = mapped_column(String(20))  # manual, auto, auto_adjusted
    interior_angle: Mapped[float | None] = mapped_column(Float)
    result_id: Mapped[int | None] = mapped_column(ForeignKey("assessment_results.id"), unique=True)
    marked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    visit: Mapped[Visit] = relationship()
    patient: Mapped[Patient] = relationship()
    result: Mapped[AssessmentResult | None] = relationship()
