"""The RTM panel's patient-level inputs to the engine: RPM periods billed for the patient (an
overlapping RTM period or month is held) and the year-to-date therapy amount from the MAC (KX).
Recorded from the page, refused with the field named, stored, audited, and followed by the engine."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from telerehab.accounts.models import AuditEntry
from telerehab.accounts.operations import Actor
from telerehab.billing.rules import RtmPolicy
from telerehab.extensions import db
from telerehab.monitoring import operations as monitoring
from telerehab.monitoring.models import RpmPeriod, TherapyAmount

from .conftest import NOW, login
from .test_monitoring_pages import assert_csp_safe
from .test_monitoring_support import START, add_checkins, days_from, enrol, lines

APRIL_2 = NOW.replace(month=4, day=2)  # the first period (Mar 2 - Mar 31) has closed
RPM_FORM = {"start_date": "2026-03-20", "end_date": "2026-04-19", "source": "denial", "note": "Denied: RPM billed"}


def panel(client, world) -> str:
    response = client.get(f"/episodes/{world.episode.id}/rtm")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def audit_rows(action: str, record_type: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(
        AuditEntry.action == action, AuditEntry.record_type == record_type).order_by(AuditEntry.id)))


def policy_with(**changes) -> dict:
    """The recommended RTM policy, as the settings form gives it, with `changes`."""
    return {**RtmPolicy().as_evidence(), **changes}


def line(slot: str):
    (found,) = [line for line in lines() if line.slot == slot]
    return found


def test_an_rpm_period_recorded_on_the_panel_holds_the_overlapping_line_at_the_next_evaluation(client, world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 16))
    monitoring.evaluate(now=APRIL_2)
    assert (line("device").code, line("device").status) == ("98977", "ready")

    login(client, "therapist")
    html = panel(client, world)
    assert "No RPM period recorded." in html and "<strong>held for review</strong>" in html
    assert 'id="rpm_note"' in html
    assert_csp_safe(html)

    path = f"/episodes/{world.episode.id}/rtm/rpm-periods"
    refused = client.post(path, data={**RPM_FORM, "end_date": "2026-03-10"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert 'id="end_date-error"' in html and "The end is before the start." in html
    assert 'name="start_date" value="2026-03-20"' in html  # the form is kept, open, with its note
    assert re.search(r'id="rpm_note" name="note"[^>]*>Denied: RPM billed</textarea>', html)
    assert re.search(r'id="note" name="note"[^>]*></textarea>', html)  # not copied into the time-entry form
    assert db.session.scalar(select(RpmPeriod.id)) is None

    response = client.post(path, data=RPM_FORM, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "RPM period 2026-03-20 to 2026-04-19 recorded." in html
    period = db.session.scalar(select(RpmPeriod))
    assert f'id="rpm-period-{period.id}"' in html and "Claim denial" in html
    assert (period.patient_id, period.start_date.isoformat(), period.end_date.isoformat(), period.source,
            period.note, period.recorded_by_id) == (world.patient.id, "2026-03-20", "2026-04-19", "denial",
                                                    "Denied: RPM billed", world.therapist.id)
    (created,) = audit_rows("create", "rpm_period")
    assert (created.record_id, created.patient_id, created.actor_id) == (period.id, world.patient.id, world.therapist.id)

    monitoring.evaluate(now=APRIL_2)
    device = line("device")
    assert device.status == "held" and "RPM" in device.reason
    assert device.evidence["rpm_overlap"] == [["2026-03-20", "2026-04-19"]]


def test_the_panel_says_when_the_payer_allows_rtm_alongside_rpm(client, world):
    monitoring.set_rtm_policy(Actor(world.admin), "medicare", policy_with(rpm_overlap="allow"), now=NOW)
    login(client, "therapist")
    html = panel(client, world)  # not enrolled: the patient's inputs are shown all the same
    assert "Not enrolled" in html
    assert "This payer allows RTM alongside RPM" in html and "held for review" not in html


@pytest.mark.parametrize("typed, cents", [("2,410.00", 241_000), ("$2410.5", 241_050), ("2410", 241_000),
                                          (" 0 ", 0), ("1,000,000.00", 100_000_000)])
def test_an_amount_in_dollars_and_cents_is_stored_as_cents(client, world, typed, cents):
    login(client, "billing")
    response = client.post(f"/episodes/{world.episode.id}/rtm/therapy-amount",
                           data={"amount": typed, "as_of": "2026-03-01"})
    assert response.status_code == 302
    stored = db.session.scalar(select(TherapyAmount))
    assert (stored.year, stored.amount_cents, stored.as_of.isoformat()) == (2026, cents, "2026-03-01")


@pytest.mark.parametrize("form, field, message", [
    ({"amount": "abc"}, "amount", "Give the amount in dollars and cents, for example 2,410.00."),
    ({"amount": ""}, "amount", "Give the amount in dollars and cents, for example 2,410.00."),
    ({"amount": "12.345"}, "amount", "Give the amount in dollars and cents, for example 2,410.00."),
    ({"amount": "1,00"}, "amount", "Give the amount in dollars and cents, for example 2,410.00."),
    ({"amount": "-5.00"}, "amount", "The amount cannot be negative."),
    ({"amount": "1,000,000.01"}, "amount", "The amount is at most $1,000,000.00."),
    ({"as_of": "2026-02-30"}, "as_of", "Not a valid date."),
    ({"as_of": "1999-12-31"}, "as_of", "The as-of date is between 2000 and 2100."),
])
def test_a_refused_amount_names_the_field_and_writes_nothing(client, world, form, field, message):
    login(client, "billing")
    response = client.post(f"/episodes/{world.episode.id}/rtm/therapy-amount",
                           data={"amount": "2,410.00", "as_of": "2026-03-01", **form})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(rf'<p class="field-error" id="{field}-error">{re.escape(message)}</p>', html)
    assert f'name="{field}" value="{form[field]}"' in html  # what was typed stays in the field
    assert db.session.scalar(select(TherapyAmount.id)) is None
    assert audit_rows("update", "therapy_amount") == []


def test_billing_records_the_years_amount_and_sees_the_kx_threshold_passed(client, world):
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 16))
    login(client, "billing")
    html = panel(client, world)
    assert "No amount recorded" in html and '<strong class="rtm-kx-threshold">$2,480.00</strong>' in html
    assert "Record RPM period" not in html  # RPM periods are the PT's to record; billing sees the list
    path = f"/episodes/{world.episode.id}/rtm/therapy-amount"

    html = client.post(path, data={"amount": "2,410.00", "as_of": "2026-03-01"},
                       follow_redirects=True).get_data(as_text=True)
    assert "Therapy amount for 2026 recorded: $2,410.00 as of 2026-03-01." in html
    row = re.search(r'<tr id="therapy-amount-2026">.*?</tr>', html, re.S).group(0)
    assert "$2,410.00" in row and "2026-03-01" in row and "not passed" in row

    html = client.post(path, data={"amount": "2,500.00", "as_of": "2026-03-15"},
                       follow_redirects=True).get_data(as_text=True)
    row = re.search(r'<tr id="therapy-amount-2026">.*?</tr>', html, re.S).group(0)
    assert "$2,500.00" in row and "passed: KX" in row
    (stored,) = db.session.scalars(select(TherapyAmount)).all()  # the year's amount is replaced, not added
    assert (stored.amount_cents, stored.as_of.isoformat(), stored.recorded_by_id) == (250_000, "2026-03-15",
                                                                                       world.billing.id)
    updates = audit_rows("update", "therapy_amount")
    assert [(u.record_id, u.patient_id, u.actor_id, u.detail) for u in updates] == [
        (stored.id, world.patient.id, world.billing.id, "year=2026;cents=241000"),
        (stored.id, world.patient.id, world.billing.id, "year=2026;cents=250000")]
    monitoring.evaluate(now=APRIL_2)
    assert line("device").modifiers == "GP KX"  # the engine agrees with the panel

    # The threshold is the payer's: raised above the amount, the panel shows it not passed.
    monitoring.set_rtm_policy(Actor(world.admin), "medicare", policy_with(kx_threshold_cents=260_000), now=NOW)
    html = panel(client, world)
    row = re.search(r'<tr id="therapy-amount-2026">.*?</tr>', html, re.S).group(0)
    assert "not passed" in row and '<strong class="rtm-kx-threshold">$2,600.00</strong>' in html


def test_reading_the_panel_audits_the_rpm_periods_and_amounts_shown(client, world):
    rpm = monitoring.record_rpm_period(Actor(world.therapist), world.patient.id, {
        "start_date": START, "end_date": START, "source": "other"}, now=NOW)
    amount = monitoring.record_therapy_amount(Actor(world.billing), world.patient.id, {
        "year": 2026, "amount_cents": 1000, "as_of": START}, now=NOW)
    login(client, "assistant")
    panel(client, world)
    (periods,) = audit_rows("list", "rpm_period")
    (amounts,) = audit_rows("list", "therapy_amount")
    assert (periods.actor_id, periods.patient_id, periods.detail) == (world.assistant.id, world.patient.id,
                                                                      f"ids={rpm.id}")
    assert (amounts.actor_id, amounts.patient_id, amounts.detail) == (world.assistant.id, world.patient.id,
                                                                      f"ids={amount.id}")


@pytest.mark.parametrize(("who", "sees_form"), [("billing", True), ("therapist", True), ("assistant", False)])
def test_only_those_who_record_the_amount_see_its_form(client, world, who, sees_form):
    login(client, who)
    html = panel(client, world)
    assert ('rtm/therapy-amount"' in html) is sees_form
