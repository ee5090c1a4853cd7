"""The billing pages: the month's workbench (filters, totals, bulk approve and hold), a line's
evidence and notes, the printable evidence pack, export batches (progress, downloads, cancel,
corrections), the fee schedule and claim settings, a therapist's own lines' status, and who may
reach any of it. Lines come the real way: the RTM engine's and a completed visit's, collected."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from telerehab.billing import operations as billing
from telerehab.billing.models import BillingLine, ExportBatch, Fee
from telerehab.careplans.models import PayerSettings
from telerehab.extensions import db
from telerehab.monitoring import operations as monitoring

from .billing_support import (  # noqa: F401 (an autouse fixture)
    APRIL_2,
    MONTH,
    collected,
    every_837p_written_passes_pyx12,
    ready_for_claims,
    rtm_month,
    signed_visit,
    with_address,
)
from .conftest import login
from .test_monitoring_pages import assert_csp_safe
from .test_monitoring_support import START, add_checkins, days_from, enrol

NOTE_TEXT = "Patient disclosed private family matters"  # a visit note's text: billing never sees it
FEES = {"98975": 2150, "98977": 4510, "98980": 3300, "97110": 3000}
CLAIM_SETTINGS = {
    "claim_payer_name": "Medicare Part B", "claim_payer_id": "00952", "submitter_name": "Riverbend",
    "submitter_id": "RIVER01", "submitter_contact_name": "Bea Biller", "submitter_contact_phone": "3125550101",
    "receiver_name": "Clearinghouse", "receiver_id": "CLEAR01", "claim_usage": "T",
}


def billable_month(world, *, claim_settings: bool = True) -> None:
    """March 2026 of the world's patient: RTM set-up, 16 data days, 25 minutes on the phone, and an
    in-clinic visit with a signed note; all collected onto the workbench."""
    ready_for_claims(world, fees=FEES, claim_settings=CLAIM_SETTINGS if claim_settings else None)
    rtm_month(world, data_days=16, minutes=25, activity="call", channel="phone")
    signed_visit(world, services=({"cpt_code": "97110", "minutes": 33},), note=NOTE_TEXT)
    collected()


def switch_to(client, username: str) -> None:
    client.post("/logout")
    login(client, username)


def all_lines() -> list[BillingLine]:
    db.session.expire_all()
    return list(db.session.scalars(select(BillingLine).order_by(BillingLine.id)))


def line_of(code: str) -> BillingLine:
    (found,) = [line for line in all_lines() if line.code == code]
    return found


def page(client, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def flashes(html: str) -> list[str]:
    return re.findall(r'<p class="flash flash-\w+" role="status">(.*?)</p>', html)


def post(client, url: str, data: dict, status: int = 302):
    response = client.post(url, data=data)
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    return response


@pytest.fixture
def month(world):
    billable_month(world)
    return world


# ---------------------------------------------------------------- the workbench


def test_the_month_lists_every_line_with_its_holds_and_totals(client, month):
    lines = all_lines()
    assert {line.code for line in lines} == {"98975", "98977", "98980", "97110"}
    assert all(line.status == "ready" for line in lines), [(line.code, line.holds) for line in lines]
    login(client, "billing")
    html = page(client, f"/billing/?month={MONTH}")
    assert_csp_safe(html)
    for line in lines:
        assert f'id="line-{line.id}"' in html
        assert f'href="/billing/lines/{line.id}?month={MONTH}"' in html
    total = sum(FEES[line.code] * line.units for line in lines)
    grand = re.search(r'<tr id="grand-total">(.*?)</tr>', html, re.S).group(1)
    assert f"<th class=\"amount\">{len(lines)}</th>" in grand
    assert f"${total // 100:,}.{total % 100:02d}" in grand
    assert 'href="/billing/?month=2026-02"' in html and 'href="/billing/?month=2026-04"' in html
    assert ">Billing</a>" in html  # the nav entry


def test_filters_narrow_the_lines_and_the_totals_and_links_keep_them(client, month):
    device = line_of("98977")
    login(client, "billing")
    html = page(client, f"/billing/?month={MONTH}&code=98977&payer=medicare")
    assert f'id="line-{device.id}"' in html
    assert html.count('name="line" value=') == 1
    assert "$45.10" in re.search(r'<tr id="grand-total">(.*?)</tr>', html, re.S).group(1)
    assert 'href="/billing/?month=2026-04&amp;payer=medicare&amp;code=98977"' in html  # next month keeps them
    assert '<input type="hidden" name="code" value="98977">' in html  # the bulk form carries them
    html = page(client, f"/billing/?month={MONTH}&status=held")
    assert "No lines of 2026-03 match these filters." in html
    html = page(client, f"/billing/?month={MONTH}&therapist={month.therapist.id}&clinic={month.clinic.id}")
    assert html.count('name="line" value=') == 4


@pytest.mark.parametrize(("query", "field", "message"), [
    ("month=2026-13", "month", "Give the month as YYYY-MM"),
    ("month=March", "month", "Give the month as YYYY-MM"),
    ("month=2026-03&status=lost", "status", "Choose a status from the list."),
    ("month=2026-03&clinic=downtown", "clinic", "Choose a clinic from the list."),
    ("month=2026-03&payer=nhs", "payer", "Choose a kind of payer."),
    ("month=2026-03&code=9", "code", "A code is 5 characters"),
    ("month=2026-03&page=0", "page", "greater than or equal to 1"),
    ("month=2026-03&clinic=99999999999999999999", "clinic", "less than or equal to 2147483647"),
    ("month=2026-03&therapist=2147483648", "therapist", "less than or equal to 2147483647"),
])
def test_bad_filters_are_refused_naming_the_field(client, world, query, field, message):
    login(client, "billing")
    html = page(client, f"/billing/?{query}", 422)
    assert f'id="{field}-error"' in html and message in html


@pytest.mark.parametrize("method, url, data, message", [
    ("GET", "/billing/evidence-pack?patient=99999999999999999999&month=2026-03", None, "less than or equal to"),
    ("GET", "/billing/evidence-pack?claim=%00", None, "No such claim number."),
    ("POST", "/billing/actions", {"month": MONTH, "line": "99999999999999999999", "action": "approve"},
     "less than or equal to"),
    ("POST", "/billing/batches", {"month": MONTH, "line": "2147483648"}, "less than or equal to"),
    ("POST", "/billing/settings/fees", {"payer_type": "medicare", "fee_98977": "99999999999"},
     "At most $100,000.00 per unit."),
])
def test_numbers_no_row_or_fee_can_hold_are_refused_with_a_message(client, world, method, url, data, message):
    login(client, "billing")
    response = client.open(url, method=method, data=data)
    assert response.status_code == 422, response.get_data(as_text=True)[:500]
    assert message in response.get_data(as_text=True)


def test_the_default_month_is_the_last_one(client, world):
    login(client, "billing")
    html = page(client, "/billing/")
    assert re.search(r"Lines of \d{4}-\d{2}", html)


def test_bulk_approve_then_hold_with_a_reason_and_refusals_listed(client, month):
    device, management = line_of("98977"), line_of("98980")
    login(client, "billing")
    filters = {"month": MONTH, "code": "98977"}
    response = post(client, "/billing/actions", {**filters, "line": [device.id, management.id], "action": "approve"})
    assert response.headers["Location"].endswith("/billing/?month=2026-03&code=98977&page=1")
    assert flashes(page(client, "/billing/?month=2026-03")) == ["2 lines approved."]
    assert {line.status for line in all_lines() if line.id in (device.id, management.id)} == {"approved"}

    html = page(client, "/billing/?month=2026-03")  # flashes are gone; hold needs a reason
    response = post(client, "/billing/actions", {"month": MONTH, "line": [device.id], "action": "hold", "reason": " "},
                    422)
    html = response.get_data(as_text=True)
    assert 'id="reason-error"' in html and "Say why the lines are held" in html
    assert re.search(rf'value="{device.id}" aria-label="Select line {device.id}"\s+checked', html)  # kept ticked
    assert line_of("98977").status == "approved"

    post(client, "/billing/actions", {"month": MONTH, "line": [device.id], "action": "hold",
                                      "reason": "Waiting for the MBI check"})
    held = line_of("98977")
    assert held.status == "held" and held.manual_hold == "Waiting for the MBI check"
    html = page(client, "/billing/?month=2026-03")
    assert flashes(html) == ["1 line held."]
    assert "Waiting for the MBI check<small>Release the hold on the billing workbench.</small>" in html

    post(client, "/billing/actions", {"month": MONTH, "line": [device.id, management.id], "action": "unapprove"})
    assert flashes(page(client, "/billing/?month=2026-03")) == [
        "1 line unapproved; 1 refused.",
        f"Line {device.id} refused: Line is held: unapprove only lines that are approved."]


def test_apply_to_all_matching_lines_uses_the_filters_not_the_page(client, month):
    login(client, "billing")
    post(client, "/billing/actions", {"month": MONTH, "payer": "medicare", "apply_all": "1", "action": "approve"})
    assert {line.status for line in all_lines()} == {"approved"}
    assert flashes(page(client, "/billing/?month=2026-03")) == ["4 lines approved."]


@pytest.mark.parametrize(("data", "field"), [
    ({"action": "approve"}, "line"),
    ({"line": "1", "action": "bless"}, "action"),
    ({"line": "1"}, "action"),
])
def test_a_bulk_action_without_lines_or_action_is_refused(client, month, data, field):
    login(client, "billing")
    html = post(client, "/billing/actions", {"month": MONTH, **data}, 422).get_data(as_text=True)
    assert f'id="{field}-error"' in html


def test_bring_in_new_lines(client, world):
    with_address(world.patient)
    enrol(world)
    add_checkins(world.patient, world.episode, days_from(START, 16))
    monitoring.evaluate(now=APRIL_2)
    login(client, "billing")
    response = post(client, "/billing/refresh", {"month": MONTH})
    assert response.headers["Location"].endswith("/billing/?month=2026-03")
    assert flashes(page(client, "/billing/?month=2026-03")) == ["Lines brought in: 2 new, 0 updated, 0 withdrawn."]
    assert {line.code for line in all_lines()} == {"98975", "98977"}
    assert all(any(hold["kind"] == "fee" for hold in line.holds) for line in all_lines())  # no fee yet


# ---------------------------------------------------------------- evidence and notes


def test_an_rtm_lines_evidence_shows_data_days_minutes_plan_and_consent(client, month):
    device, management = line_of("98977"), line_of("98980")
    login(client, "billing")
    html = page(client, f"/billing/lines/{device.id}")
    assert_csp_safe(html)
    assert "16 days with data." in html
    assert html.count("<td data-label=\"Source\">web</td>") == 16
    assert "2026-03-02 to 2026-03-31" in html  # the period
    assert "M17.11" in html and "2026-03-02 to 2026-05-30" in html  # the plan of care and its certification
    assert "written" in html and "Therapist" in html  # the consent, how and by whom
    assert 'href="/billing/evidence-pack?patient=' in html

    html = page(client, f"/billing/lines/{management.id}")
    minutes = re.search(r'<table class="responsive minute-entries">(.*?)</table>', html, re.S).group(1)
    assert "2026-03-10" in minutes and ">25<" in minutes and ">PT<" in minutes and ">yes<" in minutes
    assert ">phone<" in minutes
    assert "by Therapist, 25 minutes" in html  # the interactive communication


def test_a_visit_lines_evidence_shows_the_signature_never_the_note(client, month):
    visit_line = line_of("97110")
    login(client, "billing")
    html = page(client, f"/billing/lines/{visit_line.id}")
    assert "In clinic" in html and "97110" in html
    assert re.search(r"Note signed</dt><dd>2026-03-02 09:00 CST by Therapist", html)
    assert NOTE_TEXT not in html


def test_notes_on_a_line(client, month):
    device = line_of("98977")
    login(client, "billing")
    html = post(client, f"/billing/lines/{device.id}/notes", {"text": "  "}, 422).get_data(as_text=True)
    assert 'id="text-error"' in html
    post(client, f"/billing/lines/{device.id}/notes", {"text": "Asked the MAC about the period."})
    html = page(client, f"/billing/lines/{device.id}")
    assert "Asked the MAC about the period." in html and flashes(html) == ["Note added."]
    assert "add note" in html  # the history
    html = page(client, f"/billing/?month={MONTH}")
    assert re.search(rf'id="line-{device.id}".*?<td data-label="Notes">1</td>', html, re.S)


def test_a_line_is_held_from_its_own_page_and_the_way_back_keeps_the_filters(client, month):
    device = line_of("98977")
    login(client, "billing")
    html = page(client, f"/billing/lines/{device.id}?month={MONTH}&code=98977&bogus=1")
    assert f'href="/billing/?month={MONTH}&amp;code=98977" id="back-to-workbench"' in html
    assert "view billing" not in html  # reads are audited but not listed among the line's changes
    response = post(client, "/billing/actions", {"month": MONTH, "code": "98977", "line": str(device.id),
                                                 "from_line": str(device.id), "action": "hold",
                                                 "reason": "Checking the period with the MAC"})
    assert response.location.endswith(f"/billing/lines/{device.id}?month={MONTH}&code=98977")
    html = page(client, response.location)
    assert flashes(html) == ["1 line held."] and "Checking the period with the MAC" in html
    assert ">hold</td>" in html  # the change is in the history


def test_the_evidence_pack_of_a_patients_month_is_printable(client, month):
    login(client, "billing")
    html = page(client, f"/billing/evidence-pack?patient={month.patient.id}&month={MONTH}")
    assert_csp_safe(html)
    assert html.count('class="pack-line"') == 4
    assert 'data-print id="print-pack"' in html and "billing.js" in html and "billing.css" in html
    assert "Riverbend" in html and "1950-04-02" in html and "1EG4TE5MK73" in html
    assert NOTE_TEXT not in html
    assert "<form" not in html.split("<main")[1]  # no forms in the pack
    page(client, f"/billing/evidence-pack?patient={month.patient.id}&month=2026-3", 422)
    page(client, "/billing/evidence-pack", 422)
    page(client, "/billing/evidence-pack?claim=NOPE", 404)


# ---------------------------------------------------------------- export


def export_all(client) -> ExportBatch:
    post(client, "/billing/actions", {"month": MONTH, "apply_all": "1", "action": "approve"})
    response = post(client, "/billing/batches", {"month": MONTH})
    (batch,) = db.session.scalars(select(ExportBatch))
    assert response.headers["Location"].endswith(f"/billing/batches/{batch.id}")
    return batch


def test_export_queues_a_batch_that_the_job_writes_and_the_page_serves(client, month):
    login(client, "billing")
    batch = export_all(client)
    html = page(client, f"/billing/batches/{batch.id}")
    assert_csp_safe(html)
    assert "4 lines queued for export in batch TR" in html
    assert f'data-progress-url="/billing/batches/{batch.id}/progress"' in html and "<progress" in html
    assert client.get(f"/billing/batches/{batch.id}/progress").get_json() == {
        "status": "queued", "done": 0, "total": 4, "error": None}
    assert client.get(f"/billing/batches/{batch.id}/download/837p").status_code == 422  # not written yet

    assert billing.run_queued_exports(now=APRIL_2).ready == 1
    assert client.get(f"/billing/batches/{batch.id}/progress").get_json() == {
        "status": "ready", "done": 4, "total": 4, "error": None}
    html = page(client, f"/billing/batches/{batch.id}")
    assert "<progress" not in html and "Download 837P" in html
    db.session.expire_all()
    claim = line_of("98977").claim_number
    assert f"Claim {claim}" in html and f'href="/billing/evidence-pack?claim={claim}"' in html

    first = client.get(f"/billing/batches/{batch.id}/download/837p")
    second = client.get(f"/billing/batches/{batch.id}/download/837p")
    assert first.status_code == 200 and first.data == second.data and first.data.startswith(b"ISA*")
    assert first.headers["Content-Disposition"] == f'attachment; filename="{batch.reference}.x12"'
    assert first.headers["Cache-Control"] == "no-store"
    csv = client.get(f"/billing/batches/{batch.id}/download/csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv" and b"98977" in csv.data
    assert client.get(f"/billing/batches/{batch.id}/download/pdf").status_code == 404

    html = page(client, "/billing/batches")
    total = sum(line.charge_cents for line in all_lines())
    assert batch.reference in html and f"${total // 100}.{total % 100:02d}" in html

    pack = page(client, f"/billing/evidence-pack?claim={claim}")
    assert f"Claim {claim}" in pack and pack.count('class="pack-line"') == 4


def test_export_without_claim_settings_is_refused_naming_them(client, world):
    billable_month(world, claim_settings=False)
    login(client, "billing")
    post(client, "/billing/actions", {"month": MONTH, "apply_all": "1", "action": "approve"})
    html = post(client, "/billing/batches", {"month": MONTH}, 422).get_data(as_text=True)
    assert 'id="payer_settings-error"' in html and "Fill in the payer&#39;s claim settings first" in html
    html = post(client, "/billing/batches", {"month": "2026-02"}, 422).get_data(as_text=True)
    assert "No approved lines of 2026-02 are waiting for export." in html


def test_selected_lines_only_are_exported(client, month):
    device = line_of("98977")
    login(client, "billing")
    post(client, "/billing/actions", {"month": MONTH, "apply_all": "1", "action": "approve"})
    post(client, "/billing/batches", {"month": MONTH, "line": [device.id]})
    (batch,) = db.session.scalars(select(ExportBatch))
    assert batch.line_count == 1


def test_cancel_frees_the_lines(client, month):
    login(client, "billing")
    batch = export_all(client)
    billing.run_queued_exports(now=APRIL_2)
    post(client, f"/billing/batches/{batch.id}/cancel", {})
    html = page(client, f"/billing/batches/{batch.id}")
    assert "Batch cancelled" in html and "Cancel batch" not in html
    assert {line.status for line in all_lines()} == {"approved"}
    html = post(client, f"/billing/batches/{batch.id}/cancel", {}, 422).get_data(as_text=True)
    assert 'id="batch-error"' in html and "cannot be cancelled" in html


def test_a_failed_export_shows_the_field_and_a_hint(client, month):
    login(client, "billing")
    batch = export_all(client)
    month.patient.city = None  # the patient's address went missing after approval
    db.session.commit()
    billing.run_queued_exports(now=APRIL_2)
    html = page(client, f"/billing/batches/{batch.id}")
    assert "The export failed" in html and "<code>claims[0].subscriber.address.city</code>" in html
    assert "name, address or member id on their insurance details" in html  # the hint
    assert {line.status for line in all_lines()} == {"approved"}  # free to batch again once mended


def test_submitted_then_corrected_by_a_replacement(client, month):
    device = line_of("98977")
    login(client, "billing")
    batch = export_all(client)
    billing.run_queued_exports(now=APRIL_2)
    post(client, f"/billing/batches/{batch.id}/submitted", {})
    assert {line.status for line in all_lines()} == {"submitted"}
    claim = line_of("98977").claim_number
    html = page(client, f"/billing/batches/{batch.id}")
    assert f'action="/billing/claims/{claim}/correction"' in html
    assert 'id="mark-submitted"' not in html and 'id="cancel-batch"' not in html  # it was sent

    url = f"/billing/claims/{claim}/correction"
    html = post(client, url, {"batch_id": batch.id, "kind": "replace", "payer_claim_number": "ICN 1"},
                422).get_data(as_text=True)
    assert "The payer&#39;s claim number (ICN)" in html and "<details open>" in html
    response = post(client, url, {"batch_id": batch.id, "kind": "replace", "payer_claim_number": "21126000123",
                                  "remove": [device.id]})
    correction = db.session.scalar(select(ExportBatch).where(ExportBatch.frequency == "7"))
    assert response.headers["Location"].endswith(f"/billing/batches/{correction.id}")
    html = page(client, f"/billing/batches/{correction.id}")
    assert f"Replacement of claim {claim}" in html and "(payer's claim 21126000123)" in html
    assert line_of("98977").status == "void" and correction.line_count == 3


# ---------------------------------------------------------------- settings


def test_the_fee_schedule_is_typed_in_dollars(client, world):
    login(client, "billing")
    html = page(client, "/billing/settings?payer_type=medicare")
    assert_csp_safe(html)
    for code in ("98975", "98977", "98980", "98981", "98985", "98979"):
        assert f'id="fee_{code}"' in html
    post(client, "/billing/settings/fees", {"payer_type": "medicare", "fee_98977": "45.10", "fee_98980": "$1,200",
                                            "new_code": "97110", "new_amount": "30"})
    fees = {fee.code: fee.amount_cents for fee in db.session.scalars(select(Fee).where(Fee.payer_type == "medicare"))}
    assert fees == {"98977": 4510, "98980": 120000, "97110": 3000}
    html = page(client, "/billing/settings?payer_type=medicare")
    assert 'value="45.10"' in html and 'id="fee_97110"' in html
    post(client, "/billing/settings/fees", {"payer_type": "medicare", "fee_98977": "", "fee_98980": "1200.00",
                                            "fee_97110": "30"})
    db.session.expire_all()
    assert {fee.code for fee in db.session.scalars(select(Fee))} == {"98980", "97110"}  # blank: no fee


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"fee_98977": "45.123"}, "fee_98977", "at most 2 decimals"),
    ({"fee_98977": "0"}, "fee_98977", "more than $0.00"),
    ({"fee_98977": "-3"}, "fee_98977", "at most 2 decimals"),
    ({"fee_98977": "forty"}, "fee_98977", "at most 2 decimals"),
    ({"new_code": "97110"}, "new_amount", "Give both the code and its amount."),
    ({"new_amount": "12"}, "new_code", "Give both the code and its amount."),
    ({"new_code": "9711", "new_amount": "12"}, "new_code", "A code is 5 characters"),
])
def test_bad_fees_are_refused_beside_the_field(client, world, data, field, message):
    login(client, "billing")
    html = post(client, "/billing/settings/fees", {"payer_type": "medicare", **data}, 422).get_data(as_text=True)
    assert f'id="{field}-error"' in html and message in html
    assert db.session.scalars(select(Fee)).first() is None


def test_claim_settings_per_payer(client, world):
    login(client, "billing")
    post(client, "/billing/settings/claims", {**CLAIM_SETTINGS, "payer_type": "commercial",
                                              "submitter_contact_phone": "(312) 555-0101"})
    row = db.session.scalar(select(PayerSettings).where(PayerSettings.payer_type == "commercial"))
    assert (row.claim_payer_id, row.submitter_contact_phone, row.claim_usage) == ("00952", "3125550101", "T")
    html = page(client, "/billing/settings?payer_type=commercial")
    assert 'value="RIVER01"' in html and "Claim settings for commercial saved." in html
    assert 'href="/settings/rtm?payer_type=commercial"' in html  # the payer's RTM choices are billing's too
    rtm_settings = page(client, "/settings/rtm?payer_type=commercial")
    assert "rtm-alerts" not in rtm_settings  # the clinics' alert thresholds are the admin's
    assert 'id="policy-read-only"' in rtm_settings and "<fieldset disabled>" in rtm_settings  # and the RTM choices


@pytest.mark.parametrize(("field", "value", "message"), [
    ("submitter_id", "R", "2 to 15 letters or digits."),
    ("receiver_id", "CLEAR-01", "2 to 15 letters or digits."),
    ("submitter_contact_phone", "555-0101", "10 digits"),
    ("claim_payer_id", "0", "2 to 80 letters or digits"),
    ("claim_payer_name", "Medicare*B", "without * : ~ ^"),
    ("claim_usage", "X", "Choose test or production."),
])
def test_bad_claim_settings_are_refused_beside_the_field(client, world, field, value, message):
    login(client, "billing")
    html = post(client, "/billing/settings/claims", {**CLAIM_SETTINGS, "payer_type": "medicare", field: value},
                422).get_data(as_text=True)
    assert f'id="{field}-error"' in html and message in html
    assert db.session.scalar(select(PayerSettings).where(PayerSettings.payer_type == "medicare")) is None


# ---------------------------------------------------------------- the therapist's view, and who reaches what


def test_a_therapist_sees_their_patients_line_status_only(client, month):
    login(client, "billing")
    post(client, "/billing/actions", {"month": MONTH, "code": "98977", "apply_all": "1", "action": "approve"})
    switch_to(client, "therapist")
    html = page(client, f"/billing/status?month={MONTH}")
    assert_csp_safe(html)
    assert html.count("<tr><td data-label=\"Patient\">Ana Alvarez</td>") == 4
    assert ">Approved</span>" in html and ">Ready</span>" in html
    assert "$" not in html and "Billing status</a>" in html
    panel = page(client, f"/episodes/{month.episode.id}/rtm")  # the RTM panel shows billing's status too
    assert panel.count(">Approved by billing</span>") == 1 and ">Ready to bill</span>" in panel
    page(client, "/billing/status?month=2026-3", 422)
    switch_to(client, "therapist2")
    assert "No lines of 2026-03 for your patients." in page(client, f"/billing/status?month={MONTH}")
    page(client, f"/billing/?month={MONTH}", 403)


@pytest.mark.parametrize("username", ["ana", "assistant"])
def test_patients_and_assistants_reach_no_billing_page(client, month, username):
    login(client, "billing")
    batch = export_all(client)
    billing.run_queued_exports(now=APRIL_2)
    line = line_of("98977")
    switch_to(client, username)
    gets = [f"/billing/?month={MONTH}", f"/billing/lines/{line.id}", f"/billing/evidence-pack?claim={line.claim_number}",
            "/billing/batches", f"/billing/batches/{batch.id}", f"/billing/batches/{batch.id}/progress",
            f"/billing/batches/{batch.id}/download/837p", "/billing/settings", f"/billing/status?month={MONTH}"]
    for url in gets:
        assert client.get(url).status_code in (403, 404), url
    posts = {"/billing/actions": {"month": MONTH, "line": line.id, "action": "hold", "reason": "x"},
             "/billing/refresh": {}, "/billing/batches": {"month": MONTH},
             f"/billing/lines/{line.id}/notes": {"text": "x"}, f"/billing/batches/{batch.id}/submitted": {},
             f"/billing/batches/{batch.id}/cancel": {},
             f"/billing/claims/{line.claim_number}/correction": {"batch_id": batch.id, "kind": "void",
                                                                  "payer_claim_number": "1"},
             "/billing/settings/fees": {"payer_type": "medicare", "fee_98977": "1"},
             "/billing/settings/claims": {**CLAIM_SETTINGS, "payer_type": "medicare"}}
    for url, data in posts.items():
        assert client.post(url, data=data).status_code in (403, 404), url
    assert "/billing/" not in page(client, "/account")  # no nav entry
    db.session.expire_all()
    assert line_of("98977").status == "exported" and not line_of("98977").notes
