"""Claim export at month-close size: `python bench/exports.py` (the lead wires it into `make bench`).

BENCH_EXPORT_PATIENTS (default 1,000) patients x BENCH_EXPORT_LINES (default 10) lines each, i.e.
10,000 claim lines, written as one X12 837P interchange and as the claim CSV. Pure functions, no
database: the figures are the writers' own cost.

Printed, each against a baseline measured in the same run (best of BENCH_EXPORT_ROUNDS, default 3):

* 837P: `write_837p` (every field checked, claims split at 50 lines, envelopes counted) against a
  bare writer: f-strings for the same LX/SV1/DTP segments per line plus each patient's header
  segments, joined, with no checks at all;
* CSV: `write_claim_csv` (checked, split, cells defused) against `csv.writer` over the same rows
  already built as tuples;
* peak Python memory of each writer and each baseline (tracemalloc, separate runs: tracing slows
  the code down), and the output size.

Set BENCH_EXPORT_VALIDATE=1 to also time pyx12's validation of the 837P (slow; what CI pays).
The same month exported through the billing workbench, on a database: bench/export_db.py.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from telerehab.accounts.rules import npi_check_digit  # noqa: E402
from telerehab.billing.claim_csv import claim_rows, write_claim_csv  # noqa: E402
from telerehab.billing.x12 import (  # noqa: E402
    Address,
    Batch,
    BillingProvider,
    Claim,
    ClaimLine,
    Payer,
    PayerType,
    Provider,
    Receiver,
    Sex,
    Submitter,
    Subscriber,
    Usage,
    check_837p,
    write_837p,
)

PATIENTS = int(os.environ.get("BENCH_EXPORT_PATIENTS", "1000"))
LINES_PER_PATIENT = int(os.environ.get("BENCH_EXPORT_LINES", "10"))
ROUNDS = int(os.environ.get("BENCH_EXPORT_ROUNDS", "3"))
VALIDATE = os.environ.get("BENCH_EXPORT_VALIDATE") == "1"
MBI_LETTERS = "ACDEFGHJKMNPQRTUVWXY"


def npi(first_nine: str) -> str:
    return first_nine + str(npi_check_digit(first_nine))


def mbi(n: int) -> str:
    """A well-formed, distinct MBI per patient (pattern C A AN N A AN N A A N N)."""
    a, b, c = MBI_LETTERS[n % 20], MBI_LETTERS[n // 20 % 20], MBI_LETTERS[n // 400 % 20]
    return f"1{a}{b}{n % 10}{c}A{n // 10 % 10}AA{n // 100 % 10}{n // 1000 % 10}"


def month_close() -> tuple[Batch, list[Claim]]:
    batch = Batch("B-2026-01", datetime(2026, 2, 3, 14, 5, tzinfo=UTC), 1, 1, Usage.PRODUCTION,
                  Submitter("Telerehab PT", "TRPT01", "Billing Desk", "2175550100"), Receiver("Clearing", "CLR01"),
                  BillingProvider("Telerehab PT LLC", npi("123456789"), "371234567",
                                  Address("1 Main St", "Springfield", "IL", "627011234")))
    therapists = [Provider(f"Therapist{n}", "Pat", npi(f"1{n:08d}")) for n in range(1, 21)]
    codes = [("98977", ("GP",), 4008), ("98980", ("GP", "CQ"), 5411), ("98981", ("GP",), 4175),
             ("97110", ("GP", "95"), 3000)]
    claims = []
    for n in range(PATIENTS):
        therapist = therapists[n % len(therapists)]
        lines = []
        for k in range(LINES_PER_PATIENT):
            code, modifiers, cents = codes[k % len(codes)]
            day = date(2026, 1, 1) + timedelta(days=(n + k) % 28)
            lines.append(ClaimLine(code, modifiers, 1 + k % 2, cents, day, day + timedelta(days=k % 3),
                                   (1, 2) if k % 2 else (1,), "10" if code == "97110" else "11", therapist))
        claims.append(Claim(
            f"P{n:06d}-2026-01",
            Subscriber(f"Patient{n}", "Alex", date(1950, 1, 1) + timedelta(days=n), Sex.FEMALE,
                       Address(f"{n} Oak Ave", "Peoria", "IL", "61602"), mbi(n)),
            Payer("Medicare Illinois", "00952", PayerType.MEDICARE), ("M54.50", "M25.561"), tuple(lines),
            therapist, "11"))
    return batch, claims


def bare_837p(batch: Batch, claims: list[Claim]) -> str:
    """The baseline: the same segments by f-string, no checks, no splitting, no envelope counts."""
    out = []
    for number, claim in enumerate(claims, start=2):
        s = claim.subscriber
        out.append(f"HL*{number}*1*22*0~")
        out.append("SBR*P*18*******MB~")
        out.append(f"NM1*IL*1*{s.last_name}*{s.first_name}****MI*{s.member_id}~")
        out.append(f"DMG*D8*{s.birth_date:%Y%m%d}*{s.sex}~")
        out.append(f"NM1*PR*2*{claim.payer.name}*****PI*{claim.payer.id}~")
        total = sum(line.charge_cents for line in claim.lines)
        out.append(f"CLM*{claim.patient_control_number}*{total / 100:.2f}***11:B:1*Y*A*Y*Y~")
        out.append("HI*" + "*".join(f"ABK:{d}" for d in claim.diagnoses) + "~")
        for k, line in enumerate(claim.lines, start=1):
            out.append(f"LX*{k}~")
            out.append(f"SV1*HC:{':'.join((line.code, *line.modifiers))}*{line.charge_cents / 100:.2f}*UN*"
                       f"{line.units}***{':'.join(map(str, line.diagnosis_pointers))}~")
            out.append(f"DTP*472*RD8*{line.service_from:%Y%m%d}-{line.service_to:%Y%m%d}~")
    return "\n".join(out)


def bare_csv(rows: list[tuple[str, ...]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def best_seconds(run: Callable[[], object]) -> float:
    timings = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    return min(timings)


def peak_mib(run: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def report(label: str, run: Callable[[], str], baseline_label: str, baseline: Callable[[], object]) -> None:
    size = len(run().encode())
    ours, base = best_seconds(run), best_seconds(baseline)
    ours_mem, base_mem = peak_mib(run), peak_mib(baseline)
    print(f"{label}: {ours * 1000:.0f} ms, peak {ours_mem:.1f} MiB, {size / 2**20:.1f} MiB written")
    print(f"  baseline, {baseline_label}: {base * 1000:.0f} ms, peak {base_mem:.1f} MiB")
    print(f"  ratio: {ours / base:.1f}x the baseline's time, {ours_mem / base_mem:.1f}x its peak memory")


def pyx12_seconds(text: str) -> str:
    """pyx12's verdict on an 837P and how long it took."""
    import pyx12.params
    import pyx12.x12n_document

    start = time.perf_counter()
    ok = pyx12.x12n_document.x12n_document(param=pyx12.params.params(), src_file=io.StringIO(text),
                                           fd_997=io.StringIO(), fd_html=None)
    return f"{'OK' if ok else 'FAILED'} in {time.perf_counter() - start:.1f} s"


def main() -> None:
    batch, claims = month_close()
    lines = sum(len(claim.lines) for claim in claims)
    print(f"{PATIENTS} patients x {LINES_PER_PATIENT} lines = {lines} claim lines, best of {ROUNDS}")
    text = write_837p(batch, claims)
    problems = check_837p(text)
    assert not problems, problems[:5]
    report("837P write_837p", lambda: write_837p(batch, claims), "bare f-string segments", lambda: bare_837p(batch, claims))
    print(f"  check_837p on the file: {best_seconds(lambda: check_837p(text)) * 1000:.0f} ms")
    rows = claim_rows(batch, claims)
    report("CSV write_claim_csv", lambda: write_claim_csv(batch, claims), "csv.writer over prebuilt rows",
           lambda: bare_csv(rows))
    if VALIDATE:
        print(f"pyx12 validation of the 837P: {pyx12_seconds(text)}")


if __name__ == "__main__":
    main()
