"""Workbench rules: which status changes and clerk actions are allowed (every pair), and the holds
that keep a line from being billed (each alone, together, and at the date edges)."""

from __future__ import annotations

import dataclasses
from datetime import date
from itertools import product

import pytest

from telerehab.billing.rules import (
    ACTION_RESULT,
    LIVE_STATUSES,
    OPEN_STATUSES,
    TRANSITIONS,
    CertificationPeriod,
    ConsentSpan,
    Hold,
    HoldKind,
    LineAction,
    LineFacts,
    LineStatus,
    action_problem,
    charge_cents,
    line_holds,
    manual_hold,
    transition_problem,
)
from tests.x12_support import npi

STATUSES = [status.value for status in LineStatus]
ACTIONS = [action.value for action in LineAction]

# ---------------------------------------------------------------- statuses and transitions

ALLOWED_TRANSITIONS = {
    ("ready", "approved"), ("ready", "held"), ("ready", "withdrawn"),
    ("held", "ready"), ("held", "approved"), ("held", "withdrawn"),
    ("approved", "ready"), ("approved", "held"), ("approved", "exported"),
    ("exported", "approved"), ("exported", "submitted"), ("exported", "void"),
    ("submitted", "paid"), ("submitted", "denied"), ("submitted", "void"), ("submitted", "exported"),
    ("denied", "submitted"), ("denied", "void"), ("denied", "exported"),
    ("paid", "void"), ("paid", "exported"),
    ("withdrawn", "ready"), ("withdrawn", "held"),
}


def test_the_nine_statuses_and_which_are_open_or_live():
    assert STATUSES == ["ready", "held", "approved", "exported", "submitted", "paid", "denied", "void", "withdrawn"]
    assert {"ready", "held"} == OPEN_STATUSES
    assert {"ready", "held", "approved", "exported", "submitted", "paid", "denied"} == LIVE_STATUSES
    assert set(TRANSITIONS) == set(LineStatus)


@pytest.mark.parametrize(("current", "new"), list(product(STATUSES, STATUSES)))
def test_every_transition_pair(current, new):
    problem = transition_problem(current, new)
    if (current, new) in ALLOWED_TRANSITIONS:
        assert problem is None
    else:
        assert problem is not None
        assert current in problem and new in problem


def test_transition_messages_read_as_sentences():
    assert transition_problem("paid", "ready") == "A line that is paid cannot become ready."
    assert transition_problem("held", "held") == "Line is already held."
    assert transition_problem("void", "ready") == "A line that is void cannot become ready."


@pytest.mark.parametrize(("current", "new"), [("ready", "lost"), ("lost", "ready"), ("", "held")])
def test_unknown_statuses_get_a_message_not_an_exception(current, new):
    assert "is not a line status" in transition_problem(current, new)


# ---------------------------------------------------------------- clerk actions

# (action, status) allowed with no blocking hold; with one, approve is refused everywhere.
ALLOWED_ACTIONS = {
    ("approve", "ready"), ("approve", "held"),
    ("hold", "ready"), ("hold", "held"), ("hold", "approved"),
    ("release", "held"),
    ("unapprove", "approved"),
    ("mark_submitted", "exported"), ("mark_submitted", "denied"),
    ("mark_paid", "submitted"),
    ("mark_denied", "submitted"),
}


@pytest.mark.parametrize(("action", "status", "holds"), list(product(ACTIONS, STATUSES, [0, 1])))
def test_every_action_in_every_status(action, status, holds):
    allowed = (action, status) in ALLOWED_ACTIONS and not (action == "approve" and holds)
    problem = action_problem(action, status, holds=holds)
    assert (problem is None) == allowed, problem
    if problem and (action, status) not in ALLOWED_ACTIONS:
        assert problem.startswith(f"Line is {status}: ")


@pytest.mark.parametrize(("action", "status"), sorted(ALLOWED_ACTIONS))
def test_every_allowed_action_is_an_allowed_transition_or_keeps_the_status(action, status):
    after = ACTION_RESULT[action]
    assert after == status or transition_problem(status, after) is None
    if action == "release":  # other holds remaining keep the line held
        assert status == "held"


def test_action_results():
    assert {action.value: status.value for action, status in ACTION_RESULT.items()} == {
        "approve": "approved", "hold": "held", "release": "ready", "unapprove": "ready",
        "mark_submitted": "submitted", "mark_paid": "paid", "mark_denied": "denied"}


@pytest.mark.parametrize(("action", "status", "message"), [
    ("approve", "exported", "Line is exported: approve only lines that are ready."),
    ("approve", "held", None),
    ("unapprove", "ready", "Line is ready: unapprove only lines that are approved."),
    ("release", "approved", "Line is approved: release only lines that are held."),
    ("mark_paid", "exported", "Line is exported: mark as paid only lines that are submitted."),
    ("mark_submitted", "paid", "Line is paid: mark as submitted only lines that are exported (or denied, to resubmit)."),
    ("hold", "void", "Line is void: hold only lines that are ready or approved."),
])
def test_action_messages_a_clerk_understands(action, status, message):
    assert action_problem(action, status, holds=0) == message


@pytest.mark.parametrize(("status", "holds", "message"), [
    ("held", 1, "Line has a hold that blocks billing: release it first, then approve."),
    ("held", 3, "Line has 3 holds that block billing: release them first, then approve."),
    ("ready", 2, "Line has 2 holds that block billing: release them first, then approve."),
])
def test_a_line_with_blocking_holds_cannot_be_approved(status, holds, message):
    assert action_problem("approve", status, holds=holds) == message


def test_release_and_re_hold_are_allowed_while_other_holds_remain():
    assert action_problem("release", "held", holds=2) is None
    assert action_problem("hold", "held", holds=2) is None


def test_unknown_actions_and_statuses_get_a_message():
    assert action_problem("delete", "ready", holds=0) == "'delete' is not a workbench action."
    assert action_problem("approve", "lost", holds=0) == "'lost' is not a line status."


# ---------------------------------------------------------------- holds

THERAPIST_NPI = npi("198765432")
MBI = "1EG4TE5MK73"


def facts(**changes) -> LineFacts:
    """A Medicare RTM management month with nothing missing: no holds."""
    base = LineFacts(
        source="rtm", code="98980", service_from=date(2026, 3, 1), service_to=date(2026, 3, 31),
        payer_type="medicare", member_id=MBI, diagnosis_count=2, rendering_npi=THERAPIST_NPI,
        certification_periods=(CertificationPeriod(date(2026, 2, 15), date(2026, 5, 15), date(2026, 2, 20)),),
        consent_kind="rtm", consents=(ConsentSpan(date(2026, 2, 15), None),), fee_cents=5411)
    return dataclasses.replace(base, **changes)


def kinds(line: LineFacts) -> list[str]:
    return [hold.kind.value for hold in line_holds(line)]


def test_a_complete_line_has_no_holds():
    assert line_holds(facts()) == []


@pytest.mark.parametrize(("changes", "kind"), [
    ({"manual_hold": "Check the minutes with Anna."}, "manual"),
    ({"engine_hold": "held for review: RPM overlap"}, "engine"),
    ({"certification_periods": ()}, "certification"),
    ({"awaiting_cosign": True}, "note_signature"),
    ({"consents": ()}, "consent"),
    ({"rendering_npi": None}, "rendering_npi"),
    ({"member_id": None}, "member_id"),
    ({"has_address": False}, "address"),
    ({"diagnosis_count": 0}, "diagnosis"),
    ({"fee_cents": None}, "fee"),
])
def test_each_hold_alone(changes, kind):
    holds = line_holds(facts(**changes))
    assert [hold.kind for hold in holds] == [kind]
    hold = holds[0]
    assert hold.reason and hold.release and hold.release.endswith(".")


def test_self_pay_is_one_hold_and_needs_no_member_id():
    holds = line_holds(facts(payer_type="self_pay", member_id=None))
    assert holds == [Hold(HoldKind.SELF_PAY, "The patient is self-pay: there is no claim to file.",
                          "Record the patient's insurance on their insurance details.")]


def test_holds_come_in_a_fixed_order_manual_first_then_the_engine():
    everything = facts(manual_hold="Wait for the MAC's answer.", engine_hold="held for review: RPM overlap",
                       certification_periods=(), awaiting_cosign=True, consents=(), rendering_npi="123",
                       member_id="", diagnosis_count=0, fee_cents=None, has_address=False)
    assert kinds(everything) == ["manual", "engine", "certification", "note_signature", "consent",
                                 "rendering_npi", "member_id", "address", "diagnosis", "fee"]
    assert [kind.value for kind in HoldKind][:2] == ["manual", "engine"]


def test_manual_and_engine_holds_carry_their_own_reason():
    manual, engine = line_holds(facts(manual_hold="Check the minutes with Anna.",
                                      engine_hold="held for review: RPM overlap"))
    assert manual == manual_hold("Check the minutes with Anna.")
    assert manual.reason == "Check the minutes with Anna."
    assert manual.release == "Release the hold on the billing workbench."
    assert engine.reason == "held for review: RPM overlap"
    assert "RPM period" in engine.release and '"allow"' in engine.release


def test_a_self_pay_line_can_still_miss_other_things_but_needs_no_member_id_or_address():
    assert kinds(facts(payer_type="self_pay", member_id=None, diagnosis_count=0, fee_cents=None,
                       has_address=False)) == ["diagnosis", "fee", "self_pay"]


# Certification (Medicare only): every service day under a signed certification or recertification.

MARCH = {"service_from": date(2026, 3, 1), "service_to": date(2026, 3, 31)}


def cert(start: date, end: date, signed: date | None = date(2026, 1, 5)) -> CertificationPeriod:
    return CertificationPeriod(start, end, signed)


@pytest.mark.parametrize(("periods", "held"), [
    ((cert(date(2026, 1, 1), date(2026, 3, 31)),), False),  # ends on service_to
    ((cert(date(2026, 1, 1), date(2026, 3, 30)),), True),  # ends the day before service_to
    ((cert(date(2026, 3, 2), date(2026, 5, 31)),), True),  # starts the day after service_from
    ((cert(date(2026, 3, 1), date(2026, 3, 31)),), False),  # exactly the month
    # a recertification starting the day after the certification ends: covered
    ((cert(date(2026, 1, 1), date(2026, 3, 15)), cert(date(2026, 3, 16), date(2026, 6, 13))), False),
    # a one-day gap between them
    ((cert(date(2026, 1, 1), date(2026, 3, 15)), cert(date(2026, 3, 17), date(2026, 6, 13))), True),
    # overlapping periods, given in any order
    ((cert(date(2026, 3, 10), date(2026, 6, 7)), cert(date(2026, 1, 1), date(2026, 3, 20))), False),
    # unsigned recertification for the second half
    ((cert(date(2026, 1, 1), date(2026, 3, 15)), cert(date(2026, 3, 16), date(2026, 6, 13), None)), True),
    # an unsigned period overlapping a signed one adds nothing and takes nothing away
    ((cert(date(2026, 1, 1), date(2026, 3, 31)), cert(date(2026, 3, 16), date(2026, 6, 13), None)), False),
    ((cert(date(2026, 1, 1), date(2026, 3, 31), None),), True),
    ((), True),
])
def test_certification_must_cover_every_service_day_and_be_signed(periods, held):
    assert ("certification" in kinds(facts(certification_periods=periods, **MARCH))) == held


def test_certification_reasons_name_the_uncovered_and_unsigned_days():
    (hold,) = line_holds(facts(certification_periods=(cert(date(2026, 1, 1), date(2026, 3, 10)),
                                                      cert(date(2026, 3, 11), date(2026, 3, 20), None)), **MARCH))
    assert hold.reason == ("No Medicare plan of care certification or recertification covers 2026-03-21 to "
                           "2026-03-31; the certification covering 2026-03-11 to 2026-03-20 is not signed by "
                           "the physician yet.")
    assert hold.release == ("Record the physician's signature date on the plan of care or a recertification "
                            "covering 2026-03-11 to 2026-03-31, on the patient's plan of care page.")


def test_a_gap_in_the_middle_is_named_as_its_own_days():
    (hold,) = line_holds(facts(certification_periods=(cert(date(2026, 1, 1), date(2026, 3, 9)),
                                                      cert(date(2026, 3, 12), date(2026, 6, 1))), **MARCH))
    assert "covers 2026-03-10 to 2026-03-11." in hold.reason


def test_a_one_day_visit_uncovered():
    (hold,) = line_holds(facts(source="visit", code="97110", service_from=date(2026, 6, 2),
                               service_to=date(2026, 6, 2), consent_kind=None))
    assert hold.reason == "No Medicare plan of care certification or recertification covers 2026-06-02."


@pytest.mark.parametrize("payer_type", ["medicare_advantage", "medicaid", "commercial", "workers_comp", "self_pay"])
def test_certification_is_a_medicare_rule_only(payer_type):
    assert "certification" not in kinds(facts(payer_type=payer_type, member_id="W123", certification_periods=()))


# Consent: one grant in force on every service day.

@pytest.mark.parametrize(("consents", "held"), [
    ((ConsentSpan(date(2026, 3, 1), None),), False),  # granted on service_from
    ((ConsentSpan(date(2026, 3, 2), None),), True),  # granted the day after service_from
    ((ConsentSpan(date(2026, 1, 1), date(2026, 3, 31)),), True),  # revoked on service_to
    ((ConsentSpan(date(2026, 1, 1), date(2026, 4, 1)),), False),  # revoked the day after service_to
    ((ConsentSpan(date(2026, 1, 1), date(2026, 3, 15)),), True),  # revoked mid-month
    # revoked, then granted again mid-month: no single grant covers the month
    ((ConsentSpan(date(2026, 1, 1), date(2026, 3, 10)), ConsentSpan(date(2026, 3, 10), None)), True),
    # an old revoked grant and a current one covering the month
    ((ConsentSpan(date(2025, 1, 1), date(2025, 6, 1)), ConsentSpan(date(2026, 2, 1), None)), False),
    ((), True),
])
def test_rtm_consent_over_the_whole_span(consents, held):
    assert ("consent" in kinds(facts(consents=consents, **MARCH))) == held


@pytest.mark.parametrize(("consents", "held"), [
    ((ConsentSpan(date(2026, 6, 2), None),), False),  # granted the day of the visit
    ((ConsentSpan(date(2026, 1, 1), date(2026, 6, 2)),), True),  # revoked the day of the visit
    ((ConsentSpan(date(2026, 1, 1), date(2026, 6, 3)),), False),  # revoked the day after
])
def test_telehealth_consent_on_the_visit_day(consents, held):
    visit = facts(source="visit", code="97110", service_from=date(2026, 6, 2), service_to=date(2026, 6, 2),
                  consent_kind="telehealth", consents=consents)
    assert ("consent" in kinds(visit)) == held


def test_consent_messages():
    (none,) = line_holds(facts(consents=(), **MARCH))
    assert none.reason == "The patient has no recorded consent to remote therapeutic monitoring."
    assert none.release == ("Record the patient's consent to remote therapeutic monitoring on the patient's "
                            "consent page, given on or before 2026-03-01 and not revoked through 2026-03-31.")
    (revoked,) = line_holds(facts(consents=(ConsentSpan(date(2026, 1, 1), date(2026, 3, 15)),), **MARCH))
    assert revoked.reason == ("The patient's consent to remote therapeutic monitoring does not cover every "
                              "service day (2026-03-01 to 2026-03-31).")


def test_a_line_needing_no_consent_ignores_consents():
    assert line_holds(facts(consent_kind=None, consents=())) == []


# Member id, NPI, diagnosis, note, fee.

@pytest.mark.parametrize(("payer_type", "member_id", "held"), [
    ("medicare", "1EG4-TE5-MK73", False),  # MBI with its printed dashes
    ("medicare", "1eg4te5mk73", False),
    ("medicare", "1EG4-TE5-MK7", True),  # 10 characters
    ("medicare", "1SG4TE5MK73", True),  # S is never used
    ("medicare", "", True),
    ("medicare", None, True),
    ("commercial", "", True),
    ("commercial", "   ", True),
    ("commercial", None, True),
    ("commercial", "XYZ123456", False),
    ("medicaid", "", True),
    ("workers_comp", "WC-778", False),
    ("medicare_advantage", "H123", False),  # an MA plan's own id, not an MBI
    ("self_pay", None, False),
])
def test_member_ids(payer_type, member_id, held):
    assert ("member_id" in kinds(facts(payer_type=payer_type, member_id=member_id))) == held


def test_member_id_reasons():
    (medicare,) = line_holds(facts(member_id=None))
    assert medicare.reason == "Medicare patients need their MBI."
    (commercial,) = line_holds(facts(payer_type="commercial", member_id=""))
    assert commercial.reason == "The patient has no member id for this payer."


@pytest.mark.parametrize(("value", "reason"), [
    (None, "The rendering therapist has no NPI on file."),
    (npi("198765432")[:9] + str((int(npi("198765432")[9]) + 1) % 10),
     "This NPI's check digit is wrong; check for a mistyped digit."),
    ("12345", "An NPI is exactly 10 digits."),
    ("3" + npi("198765432")[1:], "An NPI starts with 1 or 2."),
])
def test_rendering_npi(value, reason):
    (hold,) = line_holds(facts(rendering_npi=value))
    assert hold.kind == HoldKind.RENDERING_NPI
    assert hold.reason.endswith(reason)


def test_diagnosis_note_and_fee_reasons():
    assert line_holds(facts(diagnosis_count=1)) == []
    (fee,) = line_holds(facts(fee_cents=None))
    assert fee.reason == "The payer's fee schedule has no amount for 98980."
    assert "98980" in fee.release
    assert line_holds(facts(fee_cents=0)) == []  # a fee of 0 cents is a fee


@pytest.mark.parametrize(("fee", "units", "charge"), [(None, 1, None), (0, 3, 0), (4175, 1, 4175), (4175, 3, 12525)])
def test_charge_is_fee_times_units(fee, units, charge):
    assert charge_cents(fee, units) == charge
