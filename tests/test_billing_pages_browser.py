"""Headless Chromium: the billing pages the month-close journey does not walk, served for real (CSRF
on, file SQLite, the real clock). A biller sets a payer's fees in dollars and its claim settings
(typos come back beside their fields, nothing saved); voids a submitted claim from its batch and
watches the correction batch written; cancels a downloaded batch only once she confirms it was not
sent. A therapist follows "Billing status" to their patient's lines of a month (statuses, never a
charge), and the RTM panel shows an approved line as approved by billing. Every request stays on
127.0.0.1 and the CSP blocks nothing."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from telerehab.accounts import operations as accounts
from telerehab.accounts.models import User
from telerehab.accounts.operations import Actor
from telerehab.billing import operations as billing
from telerehab.billing.models import BillingLine, ExportBatch, Fee
from telerehab.billing.schemas import FEE_TYPO
from telerehab.careplans import operations as careplans
from telerehab.careplans.operations import payer_row
from telerehab.db_types import utc_now
from telerehab.extensions import db

from .billing_support import APRIL_2, FEES, MONTH, collected, ready_for_claims, rtm_month
from .browser_support import Recorder, browser_app, playwright_or_skip, riverbend, served, sign_in
from .conftest import NOW, PASSWORD, episode_data, make_user, patient_data
from .x12_support import npi

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser

HOLD_REASON = "Plan of care being re-signed"
PAYER_CLAIM = "21126000456"
COMMERCIAL_SETTINGS = {
    "claim_payer_name": "Blue Lake Health", "claim_payer_id": "BLH77", "submitter_name": "Riverbend PT",
    "submitter_id": "RIVERBEND02", "submitter_contact_name": "Blair Biller", "receiver_name": "Lake Clearing",
    "receiver_id": "LAKE01",
}


def billing_month() -> SimpleNamespace:
    """March 2026 on Medicare, built through the operations. Ana (Therapist's patient): two lines
    approved, one held, the rest ready. Ben and Cara (Therapist2's): Ben's lines exported and submitted
    (batch `submitted`), Cara's exported and not sent (batch `unsent`)."""
    organisation, clinic, therapist, ana, ana_episode = riverbend(staff=("billing",))
    billing_user = db.session.scalar(select(User).where(User.username == "billing"))
    therapist2 = make_user(organisation.id, "therapist2", "therapist", clinic.id, npi=npi("198765432"))
    worlds = {"Ana": SimpleNamespace(billing=billing_user, clinic=clinic, therapist=therapist, patient=ana,
                                     episode=ana_episode)}
    for first, last, member_id, phone in (("Ben", "Brooks", "2EG4TE5MK74", "+13125550102"),
                                          ("Cara", "Cole", "3EG4TE5MK75", "+13125550103")):
        patient = accounts.create_patient(Actor(therapist2), patient_data(
            first_name=first, last_name=last, member_id=member_id, phone=phone, email=f"{first.lower()}@example.org",
            primary_therapist_id=therapist2.id), now=NOW)
        episode = careplans.create_episode(Actor(therapist2), patient.id, episode_data(title=f"{first}'s knee"), now=NOW)
        worlds[first] = SimpleNamespace(billing=billing_user, clinic=clinic, therapist=therapist2, patient=patient,
                                        episode=episode)
    ready_for_claims(worlds["Ana"], patients=[world.patient for world in worlds.values()])
    rtm_month(worlds["Ana"], data_days=20, minutes=45)
    rtm_month(worlds["Ben"], data_days=16, minutes=25)
    rtm_month(worlds["Cara"], data_days=18, minutes=0)
    lines: dict[str, dict[str, int]] = {first: {} for first in worlds}
    for line in collected():
        lines[line.patient.first_name][line.code] = line.id
    biller = Actor(billing_user)
    billing.apply_action(biller, [lines["Ana"]["98975"], lines["Ana"]["98977"]], "approve", now=APRIL_2)
    billing.apply_action(biller, [lines["Ana"]["98980"]], "hold", reason=HOLD_REASON, now=APRIL_2)
    batches = {}
    for first, name in (("Ben", "submitted"), ("Cara", "unsent")):
        billing.apply_action(biller, list(lines[first].values()), "approve", now=APRIL_2)
        (batch,) = billing.create_batches(biller, MONTH, line_ids=list(lines[first].values()), now=APRIL_2)
        batches[name] = SimpleNamespace(id=batch.id, reference=batch.reference)
    assert billing.run_queued_exports(now=APRIL_2).ready == 2
    billing.mark_batch_submitted(biller, batches["submitted"].id, now=APRIL_2)
    return SimpleNamespace(organisation_id=organisation.id, lines=lines, batches=batches, ana_episode=ana_episode.id)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "billing-pages-browser")
    with app.app_context():
        world = billing_month()
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, app=app, **vars(world))


def signed_in(browser, base: str, username: str, **context_options):
    """A fresh page signed in as `username`, with its recorder."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}, **context_options).new_page()
    recorder = Recorder(page)
    sign_in(page, base, username, PASSWORD)
    return page, recorder


def test_fees_in_dollars_and_claim_settings_per_payer(live_server, browser):
    base, expect = live_server.url, sync_api.expect
    page, recorder = signed_in(browser, base, "billing")
    page.goto(f"{base}/billing/settings")
    expect(page.get_by_role("heading", name="Fee schedule: medicare")).to_be_visible()
    expect(page.locator("#fee_98977")).to_have_value("45.12")  # Medicare's, set in cents
    page.get_by_label("Kind of payer").select_option("commercial")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("heading", name="Fee schedule: commercial")).to_be_visible()
    expect(page.locator("#fee_98977")).to_have_value("")

    # ---- a fee typed in dollars is stored in cents and shown again
    page.locator("#fee_98977").fill("45.10")
    page.locator("#save-fees").click()
    expect(page.get_by_text("Fee schedule for commercial saved")).to_be_visible()
    expect(page.get_by_role("heading", name="Fee schedule: commercial")).to_be_visible()
    expect(page.locator("#fee_98977")).to_have_value("45.10")

    # ---- a typo comes back beside its field and the whole form is not saved
    page.locator("#fee_98977").fill("50.00")
    page.locator("#fee_98980").fill("4.5.1")
    page.locator("#save-fees").click()
    expect(page.locator("#fee_98980-error")).to_have_text(FEE_TYPO)
    expect(page.locator("#fee_98980")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#fee_98980")).to_have_value("4.5.1")  # what she typed, to mend
    expect(page.locator("#fee-schedule .field-error")).to_have_count(1)
    expect(page.locator("#claim-settings .field-error")).to_have_count(0)

    # ---- claim settings: saved, shown again; the phone as typed is kept as its 10 digits
    page.goto(f"{base}/billing/settings?payer_type=commercial")
    for name, value in COMMERCIAL_SETTINGS.items():
        page.locator(f"#{name}").fill(value)
    page.locator("#submitter_contact_phone").fill("(312) 555-0199")
    page.get_by_label("Production (P)").check()
    page.locator("#save-claim-settings").click()
    expect(page.get_by_text("Claim settings for commercial saved.")).to_be_visible()
    for name, value in COMMERCIAL_SETTINGS.items():
        expect(page.locator(f"#{name}")).to_have_value(value)
    expect(page.locator("#submitter_contact_phone")).to_have_value("3125550199")
    expect(page.get_by_label("Production (P)")).to_be_checked()

    # ---- a bad submitter id: the message beside it, the settings unchanged
    page.locator("#submitter_id").fill("RIVER BEND!")
    page.locator("#save-claim-settings").click()
    expect(page.locator("#submitter_id-error")).to_have_text("2 to 15 letters or digits.")
    expect(page.locator("#submitter_id")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#claim-settings .field-error")).to_have_count(1)
    recorder.assert_offline_and_clean()
    page.context.close()

    with live_server.app.app_context():
        fees = {(fee.payer_type, fee.code): fee.amount_cents for fee in db.session.scalars(select(Fee))}
        assert fees == {("medicare", code): cents for code, cents in FEES.items()} | {("commercial", "98977"): 4510}
        commercial = payer_row(live_server.organisation_id, "commercial")
        assert {name: getattr(commercial, name) for name in COMMERCIAL_SETTINGS} == COMMERCIAL_SETTINGS
        assert (commercial.submitter_contact_phone, commercial.claim_usage) == ("3125550199", "P")
        assert payer_row(live_server.organisation_id, "medicare").submitter_id == "RIVERBEND01"
        db.session.remove()


def test_a_submitted_claim_is_voided_and_an_unsent_batch_cancelled(live_server, browser):
    base, expect, batches = live_server.url, sync_api.expect, live_server.batches
    submitted, unsent = batches["submitted"], batches["unsent"]
    bens = sorted(live_server.lines["Ben"].values())
    caras = sorted(live_server.lines["Cara"].values())
    page, recorder = signed_in(browser, base, "billing", accept_downloads=True)

    # ---- the list, then the submitted batch: one claim, its lines submitted
    page.goto(f"{base}/billing/batches")
    listed = page.locator("#batches tbody tr")
    expect(listed).to_have_count(2)
    expect(listed.filter(has_text=submitted.reference).locator("td[data-label=Status]")).to_have_text("Ready")
    page.get_by_role("link", name=submitted.reference).click()
    expect(page.get_by_role("heading", name=f"Batch {submitted.reference}")).to_be_visible()
    claim = page.locator("section.claim-group")
    expect(claim).to_have_count(1)
    expect(claim.locator("td[data-label=Status]")).to_have_text(["Submitted"] * len(bens))
    claim_number = claim.locator("h2").text_content().removeprefix("Claim ")

    # ---- void it with the payer's claim number: the correction batch is queued, then written
    claim.get_by_text("Correct this claim").click()
    claim.get_by_label("Void (frequency 8)").check()
    claim.get_by_label("Payer's claim number (ICN)").fill(PAYER_CLAIM)
    claim.get_by_role("button", name="Queue the correction").click()
    expect(page.get_by_text(f"Void of claim {claim_number} queued as batch")).to_be_visible()
    expect(page.locator("#batch-status")).to_have_text("Queued")
    expect(page.locator("#export-progress progress")).to_be_visible()
    expect(page.locator("#progress-label")).to_have_text(f"0 of {len(bens)} lines")
    void_reference = page.locator("h1").text_content().removeprefix("Batch ")
    with live_server.app.app_context():
        assert billing.run_queued_exports(now=utc_now()).ready == 1
        db.session.remove()
    expect(page.locator("#batch-status")).to_have_text("Ready", timeout=10_000)  # the page reloaded by itself
    expect(page.locator("#export-progress")).to_have_count(0)
    expect(page.get_by_text(f"Void of claim {claim_number} (payer's claim {PAYER_CLAIM})")).to_be_visible()
    expect(page.locator("section.claim-group td[data-label=Status]")).to_have_text(["Void"] * len(bens))
    expect(page.locator("#cancel-batch")).to_have_count(0)  # a correction stands once made
    # The original batch says its claim was corrected and offers no second correction.
    page.goto(f"{base}/billing/batches/{submitted.id}")
    expect(page.locator("section.claim-group")).to_contain_text("corrected since")
    expect(page.get_by_text("Correct this claim")).to_have_count(0)

    # ---- the unsent batch: downloaded, so cancelling asks to confirm it was not sent
    page.goto(f"{base}/billing/batches")
    expect(listed).to_have_count(3)
    expect(listed.filter(has_text=void_reference).locator("td[data-label=Kind]")).to_have_text(
        f"Void of {claim_number}")
    page.get_by_role("link", name=unsent.reference).click()
    expect(page.locator("#not-sent")).to_have_count(0)
    with page.expect_download() as download:
        page.locator("#download-837p").click()
    assert download.value.suggested_filename == f"{unsent.reference}.x12"
    page.reload()
    expect(page.get_by_label("it was not sent")).not_to_be_checked()
    page.locator("#cancel-batch").click()
    expect(page.locator("#not_sent-error")).to_contain_text("This batch's file was downloaded on")
    expect(page.locator("#batch-status")).to_have_text("Ready")
    page.locator("#not-sent").check()
    page.locator("#cancel-batch").click()
    expect(page.get_by_text("Batch cancelled: its lines are approved again")).to_be_visible()
    expect(page.locator("#batch-status")).to_have_text("Cancelled")
    expect(page.locator("#cancel-batch")).to_have_count(0)
    expect(page.locator("#download-837p")).to_have_count(0)
    recorder.assert_offline_and_clean()
    page.context.close()

    with live_server.app.app_context():
        found = {batch.reference: batch for batch in db.session.scalars(select(ExportBatch))}
        void = found[void_reference]
        assert (void.status, void.frequency, void.corrects_claim_number, void.original_claim_number) == (
            "ready", "8", claim_number, PAYER_CLAIM)
        assert (found[submitted.reference].status, found[unsent.reference].status) == ("ready", "cancelled")
        lines = {line.id: line for line in db.session.scalars(select(BillingLine).where(
            BillingLine.id.in_(bens + caras)))}
        assert {line_id: (lines[line_id].status, lines[line_id].payer_claim_number) for line_id in bens} == {
            line_id: ("void", PAYER_CLAIM) for line_id in bens}
        assert {line_id: (lines[line_id].status, lines[line_id].claim_number) for line_id in caras} == {
            line_id: ("approved", None) for line_id in caras}
        db.session.remove()


def test_a_therapist_follows_their_patients_lines_without_charges(live_server, browser):
    base, expect, anas = live_server.url, sync_api.expect, live_server.lines["Ana"]
    expected = {code: "Ready" for code in anas} | {"98975": "Approved", "98977": "Approved", "98980": "Held"}
    page, recorder = signed_in(browser, base, "therapist")
    page.get_by_role("link", name="Billing status").click()
    expect(page.get_by_role("heading", name="Billing status")).to_be_visible()
    rows = page.locator("#own-lines tbody tr")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("No lines of")  # last month's: nothing billed then

    page.locator("#month").fill(MONTH)
    page.get_by_role("button", name="Show").click()
    expect(page.locator("nav.month-nav strong")).to_have_text(MONTH)
    expect(rows).to_have_count(len(anas))
    shown = {row.locator("td[data-label=Code]").text_content(): row.locator("td[data-label=Status]").text_content()
             for row in rows.all()}
    assert shown == expected
    expect(rows.filter(has_text="Ana Alvarez")).to_have_count(len(anas))  # Therapist2's patients are not listed
    assert "$" not in page.locator("body").inner_text()
    assert "$" not in page.content()

    # ---- the episode's RTM panel: the approved device code carries billing's status
    page.goto(f"{base}/episodes/{live_server.ana_episode}/rtm")
    device = page.locator("#rtm-decisions tbody tr").filter(
        has=page.locator("td[data-label=Code]", has_text="98977"))
    expect(device.locator("td[data-label=Status]")).to_have_text("Approved by billing")
    recorder.assert_offline_and_clean()
    page.context.close()
