"""Headless Chromium: a billing user closes March on the workbench, served for real (CSRF on, file
SQLite, the real clock). Two patients of two therapists, RTM lines and a visit charge: she filters,
opens a line's evidence, holds one line with a reason, approves the rest and exports them; the batch
page polls while the scheduler's export job (run as the scheduler runs it) writes the files, and
reloads itself when they are ready. The 837P she downloads passes pyx12 and our own checks and
bills each patient's approved lines, never the held one; a claim's evidence pack is printable.
Every request stays on 127.0.0.1 and the CSP blocks nothing."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from telerehab.accounts import operations as accounts
from telerehab.accounts.models import User
from telerehab.accounts.operations import Actor
from telerehab.billing import x12
from telerehab.billing.models import BillingLine
from telerehab.billing.views import dollars  # the pages' own format
from telerehab.careplans import operations as careplans
from telerehab.extensions import db
from telerehab.jobs.models import JobRun
from telerehab.jobs.scheduler import JOBS, run_job

from .billing_support import FEES, MONTH, collected, ready_for_claims, rtm_month, signed_visit
from .browser_support import Recorder, browser_app, playwright_or_skip, riverbend, served, sign_in
from .conftest import NOW, PASSWORD, episode_data, make_user, patient_data
from .x12_support import npi, pyx12_errors

sync_api = playwright_or_skip()

pytestmark = pytest.mark.browser

HOLD_REASON = "Waiting for the MAC's answer on the interactive call"
(EXPORT_JOB,) = [job for job in JOBS if job.id == "run_claim_exports"]


def closing_month() -> dict[tuple[str, str], int]:
    """March 2026 ready to bill: Ana (Therapist's patient: 20 data days, 45 minutes, an in-clinic
    visit) and Ben (Therapist2's: 16 data days, 25 minutes), both on Medicare, fees and claim
    settings set. Returns the workbench lines' ids by (patient's first name, code)."""
    organisation, clinic, therapist, ana, ana_episode = riverbend(staff=("billing",))
    billing_user = db.session.scalar(select(User).where(User.username == "billing"))
    therapist2 = make_user(organisation.id, "therapist2", "therapist", clinic.id, npi=npi("198765432"))
    ben = accounts.create_patient(Actor(therapist2), patient_data(
        first_name="Ben", last_name="Brooks", member_id="2EG4TE5MK74", phone="+13125550102",
        email="ben@example.org", primary_therapist_id=therapist2.id), now=NOW)
    ben_episode = careplans.create_episode(Actor(therapist2), ben.id, episode_data(title="Left hip OA"), now=NOW)
    anas = SimpleNamespace(billing=billing_user, clinic=clinic, therapist=therapist, patient=ana, episode=ana_episode)
    bens = SimpleNamespace(billing=billing_user, clinic=clinic, therapist=therapist2, patient=ben, episode=ben_episode)
    ready_for_claims(anas, patients=[ana, ben])
    rtm_month(anas, data_days=20, minutes=45)
    signed_visit(anas)
    rtm_month(bens, data_days=16, minutes=25)
    lines = collected()
    assert {line.status for line in lines} == {"ready"}, [(line.code, line.holds) for line in lines]
    return {(line.patient.first_name, line.code): line.id for line in lines}


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[SimpleNamespace]:
    app = browser_app(tmp_path_factory, "billing-browser")
    with app.app_context():
        lines = closing_month()
        charges = {key: db.session.get(BillingLine, line_id).charge_cents for key, line_id in lines.items()}
        db.session.remove()
    with served(app) as url:
        yield SimpleNamespace(url=url, app=app, lines=lines, charges=charges)


def claims_by_patient(text: str) -> dict[str, dict]:
    """Each subscriber's claims in an 837P: how many, their CLM totals and SV1 codes (sorted), by
    "LAST, FIRST"."""
    element, component, terminator = text[3], text[104], text[105]
    claims: dict[str, dict] = defaultdict(lambda: {"claims": 0, "total_cents": 0, "codes": []})
    subscriber = None
    for segment in text.split(terminator):
        fields = segment.strip().split(element)
        if fields[0] == "NM1" and fields[1] == "IL":
            subscriber = f"{fields[3]}, {fields[4]}"
        elif fields[0] == "CLM":
            claims[subscriber]["claims"] += 1
            claims[subscriber]["total_cents"] += round(float(fields[2]) * 100)
        elif fields[0] == "SV1":
            claims[subscriber]["codes"].append(fields[1].split(component)[1])
    return {name: {**found, "codes": sorted(found["codes"])} for name, found in claims.items()}


def test_a_biller_closes_the_month_and_downloads_a_valid_837p(live_server, browser):
    base, expect, lines, charges = live_server.url, sync_api.expect, live_server.lines, live_server.charges
    held = lines["Ben", "98980"]
    approved = {key: line_id for key, line_id in lines.items() if line_id != held}
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    recorder = Recorder(page)
    sign_in(page, base, "billing", PASSWORD)

    # ---- the month: every line, and totals that follow the filters
    page.goto(f"{base}/billing/?month={MONTH}")
    rows, grand_total = page.locator("#lines tbody tr"), page.locator("#grand-total")
    expect(rows).to_have_count(len(lines))
    expect(grand_total).to_contain_text(dollars(sum(charges.values())))
    page.locator("#code").select_option("98977")
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(2)
    expect(grand_total).to_contain_text(dollars(2 * FEES["98977"]))
    page.locator("#code").select_option("")
    page.locator("#therapist").select_option(label="Therapist2")
    page.get_by_role("button", name="Show").click()
    bens = {key: line_id for key, line_id in lines.items() if key[0] == "Ben"}
    expect(rows).to_have_count(len(bens))
    expect(rows.filter(has_text="Ana Alvarez")).to_have_count(0)
    expect(grand_total).to_contain_text(dollars(sum(charges[key] for key in bens)))

    # ---- lines' evidence: the data days that bill the device code, the minutes that bill 98980
    page.locator(f"#line-{lines['Ben', '98977']}").get_by_role("link", name="Ben Brooks").click()
    expect(page.get_by_role("heading", name="Ben Brooks · 98977")).to_be_visible()
    expect(page.get_by_text("16 days with data.")).to_be_visible()
    expect(page.locator("table.data-days tbody tr")).to_have_count(16)
    expect(page.locator("table.data-days tbody tr").first).to_contain_text("2026-03-02")
    page.go_back()
    page.locator(f"#line-{held}").get_by_role("link", name="Ben Brooks").click()
    expect(page.get_by_role("heading", name="Ben Brooks · 98980")).to_be_visible()
    minutes = page.locator("table.minute-entries")
    expect(minutes.locator("tbody tr")).to_have_count(1)
    expect(minutes.locator("tbody tr")).to_contain_text("2026-03-10")
    expect(minutes.locator("tbody td[data-label=Who]")).to_have_text("Therapist2")
    expect(minutes.locator("tbody td[data-label=Interactive]")).to_have_text("yes")
    expect(minutes.locator("tfoot")).to_contain_text("25")
    page.go_back()
    expect(rows).to_have_count(len(bens))

    # ---- hold one line with its reason (kept in the filtered view)
    page.locator(f"#line-{held} input[name=line]").check()
    page.locator("#action").select_option("hold")
    page.locator("#reason").fill(HOLD_REASON)
    page.locator("#apply-action").click()
    expect(page.get_by_text("1 line held.")).to_be_visible()
    expect(rows).to_have_count(len(bens))
    held_row = page.locator(f"#line-{held}")
    expect(held_row.locator("td[data-label=Status]")).to_have_text("Held")
    expect(held_row.locator("td[data-label=Holds]")).to_contain_text(HOLD_REASON)

    # ---- every therapist again; select all but the held line, approve
    page.locator("#therapist").select_option("")
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(len(lines))
    page.get_by_label("Select every line of this page").check()
    page.locator(f"#line-{held} input[name=line]").uncheck()
    page.locator("#action").select_option("approve")
    page.locator("#apply-action").click()
    expect(page.get_by_text(f"{len(approved)} lines approved.")).to_be_visible()
    totals = page.locator("#totals tbody tr")
    approved_total = sum(charges[key] for key in approved)
    expect(totals.filter(has_text="Approved")).to_contain_text(dollars(approved_total))
    expect(totals.filter(has_text="Approved").locator("td[data-label=Lines]")).to_have_text(str(len(approved)))
    expect(totals.filter(has_text="Held").locator("td[data-label=Lines]")).to_have_text("1")
    expect(totals.filter(has_text="Ready")).to_have_count(0)

    # ---- export: the page shows the queued batch and polls; the scheduler's job writes it meanwhile
    page.locator("#export-lines").click()
    expect(page.get_by_text(f"{len(approved)} lines queued for export in batch")).to_be_visible()
    expect(page.locator("#batch-status")).to_have_text("Queued")
    expect(page.locator("#export-progress progress")).to_be_visible()
    expect(page.locator("#progress-label")).to_have_text(f"0 of {len(approved)} lines")
    progress_url = page.locator("#export-progress progress").get_attribute("data-progress-url")
    with page.expect_response(lambda response: response.url == base + progress_url) as poll:
        pass
    assert poll.value.json() == {"status": "queued", "done": 0, "total": len(approved), "error": None}
    job = threading.Thread(target=run_job, args=(live_server.app, EXPORT_JOB.function), kwargs={"job_id": EXPORT_JOB.id})
    job.start()
    job.join(timeout=30)
    with live_server.app.app_context():
        (run,) = db.session.scalars(select(JobRun).where(JobRun.job == EXPORT_JOB.id))
        assert (run.outcome, run.error) == ("ok", None)
        db.session.remove()
    expect(page.locator("#batch-status")).to_have_text("Ready", timeout=10_000)  # the page reloaded by itself
    expect(page.locator("#export-progress")).to_have_count(0)
    expect(page.get_by_text("queued for export in batch")).to_have_count(0)  # the flash went with the first view
    expect(page.locator("section.claim-group")).to_have_count(2)

    # ---- the 837P: valid, one claim per patient, the approved lines only
    with page.expect_download() as download_info:
        page.locator("#download-837p").click()
    download = download_info.value
    reference = page.locator("h1").text_content().removeprefix("Batch ")
    assert download.suggested_filename == f"{reference}.x12"
    text = Path(download.path()).read_text(encoding="ascii")
    assert pyx12_errors(text) == []
    assert x12.check_837p(text) == []
    ana_codes = sorted(code for name, code in approved if name == "Ana")
    assert claims_by_patient(text) == {
        "ALVAREZ, ANA": {"claims": 1, "codes": ana_codes,
                         "total_cents": sum(charges[key] for key in approved if key[0] == "Ana")},
        "BROOKS, BEN": {"claims": 1, "codes": ["98975", "98977"],
                        "total_cents": sum(charges[key] for key in approved if key[0] == "Ben")},
    }

    # ---- a claim's evidence pack, printable
    ben_claim = page.locator("section.claim-group", has_text="Ben Brooks")
    ben_claim.get_by_role("link", name="Evidence pack").click()
    expect(page.get_by_role("heading", name="Evidence pack")).to_be_visible()
    expect(page.locator("#print-pack")).to_be_visible()
    expect(page.locator("article.pack-line")).to_have_count(2)
    expect(page.locator("#pack-header")).to_contain_text("2EG4TE5MK74")
    recorder.assert_offline_and_clean()
    context.close()

    with live_server.app.app_context():
        statuses = {line.id: (line.status, line.manual_hold) for line in db.session.scalars(select(BillingLine))}
        assert statuses == {line_id: ("exported", None) for line_id in approved.values()} | {
            held: ("held", HOLD_REASON)}
        db.session.remove()
