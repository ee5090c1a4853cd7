"""Role tables for the clinic scheduling rules, closures and working-hours pages."""

from datetime import date

import pytest

from telerehab.accounts.operations import Actor
from telerehab.careplans import operations as care

from .conftest import NOW
from .test_authorisation import REFUSED, ROLES, Case, _page_call


def _closure(world, other=False):
    clinic = world.other_clinic if other else world.clinic
    return care.add_closure(Actor(world.admin), clinic.id, date(2026, 12, 25), "Christmas", now=NOW)


SCHEDULING_PAGE_CASES = [
    Case("GET", "/admin/payers", lambda w: "/admin/payers", {"admin": 200}),
    Case("POST", "/admin/payers", lambda w: "/admin/payers", {"admin": 302},
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


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", SCHEDULING_PAGE_CASES, ids=str)
def test_scheduling_page_role_table(client, world, case, role):
    response = _page_call(client, world, case, role, case.path)
    if role in case.allowed:
        assert response.status_code == case.allowed[role], response.get_data(as_text=True)[:1500]
    else:
        assert response.status_code in REFUSED


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", [c for c in SCHEDULING_PAGE_CASES if c.other_path], ids=str)
def test_another_organisations_clinic_and_staff_are_refused(client, world, case, role):
    assert _page_call(client, world, case, role, case.other_path).status_code in REFUSED
