"""An episode or a visit fetched for an actor, with the policy check: every domain that works on a
plan of care (exercises, assessments, monitoring, video) loads it here, so that "may this person
see this record" is asked one way everywhere. Imports only models and the policy, so any
operations module can use it without an import cycle."""

from __future__ import annotations

from telerehab.accounts.policy import Permission, require_patient
from telerehab.careplans.models import Episode, Visit
from telerehab.errors import NotFound
from telerehab.extensions import db


def episode_for(actor, episode_id: int, permission: Permission) -> Episode:
    episode = db.session.get(Episode, episode_id)
    if episode is None:
        raise NotFound("No such episode.")
    require_patient(actor.user, episode.patient, permission)
    return episode


def visit_for(actor, visit_id: int, permission: Permission) -> Visit:
    visit = db.session.get(Visit, visit_id)
    if visit is None:
        raise NotFound("No such visit.")
    require_patient(actor.user, visit.patient, permission)
    return visit
