"""Who may use the billing pages: the rows tests/test_authorisation.py plays against every role and
against another clinic's patient. Billing staff and the admin work the workbench, the batches and
the settings; billing staff of one clinic never reach another clinic's lines; a therapist sees
only where their own patients' lines stand; assistants and patients reach nothing."""

from __future__ import annotations

from sqlalchemy import select

from telerehab.accounts.operations import Actor
from telerehab.billing import operations as billing
from telerehab.billing.models import BillingLine
from telerehab.extensions import db
from telerehab.monitoring import operations as monitoring

from .authorisation_support import Case
from .test_billing_pages import APRIL_2, CLAIM_SETTINGS, MONTH, billable_month
from .test_monitoring_support import START, add_checkins, days_from, enrol

MANAGERS = ("admin", "billing")
OK, REDIRECT = {role: 200 for role in MANAGERS}, {role: 302 for role in MANAGERS}


def _line(world) -> int:
    billable_month(world)
    return db.session.scalar(select(BillingLine.id).where(BillingLine.code == "98977"))


def _other_line(world) -> int:
    """A line of the other clinic's patient (same organisation)."""
    enrol(world, episode=world.other_episode, therapist=world.other_therapist)
    add_checkins(world.other_patient, world.other_episode, days_from(START, 16))
    monitoring.evaluate(now=APRIL_2)
    billing.collect_lines(now=APRIL_2)
    return db.session.scalar(select(BillingLine.id).where(BillingLine.patient_id == world.other_patient.id,
                                                          BillingLine.code == "98977"))


def _approved(world) -> int:
    line_id = _line(world)
    billing.apply_action(Actor(world.billing), [line_id], "approve", now=APRIL_2)
    return line_id


def _batch(world, *, written: bool = True) -> int:
    _approved(world)
    (batch,) = billing.create_batches(Actor(world.billing), MONTH, now=APRIL_2)
    if written:
        billing.run_queued_exports(now=APRIL_2)
    return batch.id


def _claim(world) -> str:
    _batch(world)
    return db.session.scalar(select(BillingLine.claim_number).where(BillingLine.claim_number.is_not(None)))


BILLING_PAGE_CASES = [
    Case("GET", "/billing/", lambda w: f"/billing/?month={MONTH}", OK),
    Case("POST", "/billing/actions", lambda w: "/billing/actions", REDIRECT,
         body=lambda w: {"month": MONTH, "line": str(_line(w)), "action": "approve"}),
    Case("POST", "/billing/refresh", lambda w: "/billing/refresh", REDIRECT, body=lambda w: {"month": MONTH}),
    Case("POST", "/billing/batches", lambda w: (_approved(w), "/billing/batches")[1], REDIRECT,
         body=lambda w: {"month": MONTH}),
    Case("GET", "/billing/lines/<id:line_id>", lambda w: f"/billing/lines/{_line(w)}", OK,
         other_path=lambda w: f"/billing/lines/{_other_line(w)}", other_allowed=("admin",)),
    Case("POST", "/billing/lines/<id:line_id>/notes", lambda w: f"/billing/lines/{_line(w)}/notes", REDIRECT,
         body=lambda w: {"text": "Checked."}, other_path=lambda w: f"/billing/lines/{_other_line(w)}/notes",
         other_allowed=("admin",)),
    Case("GET", "/billing/evidence-pack", lambda w: (_line(w), f"/billing/evidence-pack?patient={w.patient.id}"
                                                     f"&month={MONTH}")[1], OK,
         other_path=lambda w: (_other_line(w), f"/billing/evidence-pack?patient={w.other_patient.id}"
                                               f"&month={MONTH}")[1], other_allowed=("admin",)),
    Case("GET", "/billing/batches", lambda w: "/billing/batches", OK),
    Case("GET", "/billing/batches/<id:batch_id>", lambda w: f"/billing/batches/{_batch(w)}", OK),
    Case("GET", "/billing/batches/<id:batch_id>/progress", lambda w: f"/billing/batches/{_batch(w)}/progress", OK),
    Case("GET", "/billing/batches/<id:batch_id>/download/<any('837p', 'csv'):file_format>",
         lambda w: f"/billing/batches/{_batch(w)}/download/837p", OK),
    Case("POST", "/billing/batches/<id:batch_id>/submitted", lambda w: f"/billing/batches/{_batch(w)}/submitted",
         REDIRECT),
    Case("POST", "/billing/batches/<id:batch_id>/cancel",
         lambda w: f"/billing/batches/{_batch(w, written=False)}/cancel", REDIRECT),
    Case("POST", "/billing/claims/<claim_number>/correction", lambda w: f"/billing/claims/{_claim(w)}/correction",
         REDIRECT, body=lambda w: {"kind": "void", "payer_claim_number": "21126000123"}),
    Case("GET", "/billing/settings", lambda w: "/billing/settings", OK),
    Case("POST", "/billing/settings/fees", lambda w: "/billing/settings/fees", REDIRECT,
         body=lambda w: {"payer_type": "medicare", "fee_98977": "45.10"}),
    Case("POST", "/billing/settings/claims", lambda w: "/billing/settings/claims", REDIRECT,
         body=lambda w: {**CLAIM_SETTINGS, "payer_type": "medicare"}),
    Case("GET", "/billing/status", lambda w: f"/billing/status?month={MONTH}", {"therapist": 200}),
]

PUBLIC_BILLING_STATIC = {("GET", "/billing/static/<path:filename>")}  # the pages' CSS and JS
