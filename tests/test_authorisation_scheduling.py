"""Role tables for the clinic scheduling rules, closures and working-hours pages."""

from datetime import date

from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as care

from .authorisation_support import Case
from .conftest import NOW


def _closure(world, other=False):
    clinic = world.other_clinic if other else world.clinic
    return care.add_closure(Actor(world.admin), clinic.id, date(2026, 12, 25), "Christmas", now=NOW)


SCHEDULING_PAGE_CASES = [
    Case("GET", "/admin/payers", lambda w: "/admin/payers", {"admin": 200, "billing": 200}),
    Case("POST", "/admin/payers", lambda w: "/admin/payers", {"admin": 302, "billing": 302},
         body=lambda w: {"modifier_95_medicare": "on"}),
    Case("GET", "/admin/clinics/<id:clinic_id>/scheduling", lambda w: f"/admin/clinics/{w.clinic.id}/scheduling",
         {"admin": 200}, other_path=lambda w: f"/admin/clinics/{w.foreign_clinic.id}/scheduling"),
    Case("POST", "/admin/clinics/<id:clinic_id>/scheduling", lambda w: f"/admin/clinics/{w.clinic.id}/scheduling",
         {"admin": 302}, body=lambda w: {"form": "closure", "day": "2026-12-24", "reason": "Christmas Eve"},
         other_path=lambda w: f"/admin/clinics/{w.foreign_clinic.id}/scheduling"),
    Case("POST", "/admin/closures/<id:closure_id>/delete", lambda w: f"/admin/closures/{_closure(w).id}/delete",
         {"admin": 302}),
    Case("GET", "/staff/<id:user_id>/hours", lambda w: f"/staff/{w.therapist.id}/hours",
         {"admin": 200, "therapist": 200},
         other_path=lambda w: f"/staff/{w.foreign_therapist.id}/hours"),
    Case("POST", "/staff/<id:user_id>/hours", lambda w: f"/staff/{w.therapist.id}/hours",
         {"admin": 302, "therapist": 302}, body=lambda w: {"start_0_0": "07:00", "end_0_0": "15:00"},
         other_path=lambda w: f"/staff/{w.foreign_therapist.id}/hours"),
]
