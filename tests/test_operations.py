"""The operations layer, called directly with explicit `now` values, on SQLite and PostgreSQL.

Every test here takes `db` (directly or through `world`), so it runs once per database.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from telerehab.accounts import operations as accounts
from telerehab.accounts.models import ApiToken, AuditEntry, Consent, LoginAttempt, User
from telerehab.accounts.operations import SYSTEM, Actor
from telerehab.careplans import operations as careplans
from telerehab.careplans.models import Episode, EpisodeDiagnosis, EpisodeGoal
from telerehab.errors import Forbidden, NotFound, Throttled, ValidationFailed

from .conftest import NOW, PASSWORD, episode_data, make_user, patient_data

WINDOW = timedelta(minutes=15)
IP = "203.0.113.7"
WRONG_PASSWORD = "wrong-password-123"


def count(db, model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def audit_entries(db, *where) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(*where).order_by(AuditEntry.id)))


def fail(username: str, *, ip: str, now: datetime, password: str = WRONG_PASSWORD) -> None:
    with pytest.raises(ValidationFailed) as excinfo:
        accounts.authenticate(username, password, ip_address=ip, now=now)
    assert set(excinfo.value.errors) == {"password"}


def test_login_limits_are_the_documented_ones(app):
    assert app.config["LOGIN_MAX_FAILURES"] == 5
    assert app.config["LOGIN_WINDOW_MINUTES"] == 15


# ---------------------------------------------------------------- authenticate


def test_successful_sign_in_records_attempt_and_audit_entry(db, world):
    at = NOW + timedelta(hours=1)
    user = accounts.authenticate("therapist", PASSWORD, ip_address=IP, now=at)
    assert user.id == world.therapist.id

    attempts = list(db.session.scalars(select(LoginAttempt)))
    assert [(a.username, a.ip_address, a.succeeded, a.at) for a in attempts] == [("therapist", IP, True, at)]
    (entry,) = audit_entries(db, AuditEntry.action == "sign_in")
    assert (entry.actor_id, entry.actor_role, entry.record_type, entry.record_id, entry.ip_address, entry.at) == (
        world.therapist.id, "therapist", "user", world.therapist.id, IP, at)


@pytest.mark.parametrize("typed", ["Therapist", " therapist ", "THERAPIST"], ids=["title", "spaces", "upper"])
def test_username_is_matched_case_and_space_insensitively(db, world, typed):
    assert accounts.authenticate(typed, PASSWORD, ip_address=IP, now=NOW).id == world.therapist.id


@pytest.mark.parametrize(("username", "password"), [
    ("therapist", WRONG_PASSWORD),
    ("nobody-here", PASSWORD),
    ("nobody-here", "not-a-password"),  # the dummy hash's own password must not let anyone in
    ("therapist", ""),
], ids=["wrong-password", "unknown-user", "unknown-user-dummy-password", "empty-password"])
def test_failed_sign_in_is_recorded_and_not_audited_as_sign_in(db, world, username, password):
    fail(username, ip=IP, now=NOW, password=password)
    attempts = list(db.session.scalars(select(LoginAttempt)))
    assert [(a.username, a.succeeded, a.at) for a in attempts] == [(username, False, NOW)]
    assert audit_entries(db, AuditEntry.action == "sign_in") == []


def test_unknown_username_fails_exactly_like_a_wrong_password(db, world):
    with pytest.raises(ValidationFailed) as wrong_password:
        accounts.authenticate("therapist", WRONG_PASSWORD, ip_address="198.51.100.1", now=NOW)
    with pytest.raises(ValidationFailed) as unknown_user:
        accounts.authenticate("nobody-here", PASSWORD, ip_address="198.51.100.2", now=NOW)
    assert unknown_user.value.errors == wrong_password.value.errors
    assert type(unknown_user.value) is type(wrong_password.value)


def test_inactive_user_cannot_sign_in_even_with_the_right_password(db, world):
    accounts.set_user_active(Actor(world.admin), world.therapist2.id, False, now=NOW)
    at = NOW + timedelta(minutes=1)
    with pytest.raises(ValidationFailed) as excinfo:
        accounts.authenticate("therapist2", PASSWORD, ip_address=IP, now=at)
    with pytest.raises(ValidationFailed) as wrong_password:
        accounts.authenticate("therapist", WRONG_PASSWORD, ip_address="198.51.100.9", now=at)
    assert excinfo.value.errors == wrong_password.value.errors  # no hint that the account exists
    attempt = db.session.scalar(select(LoginAttempt).where(LoginAttempt.username == "therapist2"))
    assert attempt.succeeded is False
    assert audit_entries(db, AuditEntry.action == "sign_in") == []

    accounts.set_user_active(Actor(world.admin), world.therapist2.id, True, now=at)
    assert accounts.authenticate("therapist2", PASSWORD, ip_address=IP, now=at).id == world.therapist2.id


def test_five_failures_on_one_account_pause_it_even_with_the_right_password(db, world):
    # Each failure from another address, so that only the per-account count can trip.
    for i in range(5):
        fail("therapist", ip=f"198.51.100.{i + 1}", now=NOW)

    for offset in (timedelta(seconds=1), timedelta(minutes=14, seconds=59), WINDOW - timedelta(microseconds=1)):
        with pytest.raises(Throttled) as excinfo:
            accounts.authenticate("therapist", PASSWORD, ip_address="192.0.2.50", now=NOW + offset)
        assert excinfo.value.status == 429
        remaining = (WINDOW - offset).total_seconds()
        assert remaining <= excinfo.value.retry_after_seconds <= remaining + 1
        assert "minute" in str(excinfo.value)

    # Other accounts from a fresh address are unaffected.
    assert accounts.authenticate("therapist2", PASSWORD, ip_address="192.0.2.51", now=NOW + timedelta(seconds=2))
    # A refused attempt adds no row: it cannot extend its own pause.
    assert count(db, LoginAttempt, LoginAttempt.username == "therapist") == 5

    user = accounts.authenticate("therapist", PASSWORD, ip_address="192.0.2.50", now=NOW + WINDOW + timedelta(seconds=1))
    assert user.id == world.therapist.id


def test_throttle_message_counts_minutes(db, world):
    for i in range(5):
        fail("therapist", ip=f"198.51.100.{i + 1}", now=NOW)
    with pytest.raises(Throttled) as excinfo:
        accounts.authenticate("therapist", PASSWORD, ip_address="192.0.2.50", now=NOW + timedelta(minutes=13))
    assert "2 minutes" in str(excinfo.value)


def test_four_failures_do_not_pause(db, world):
    for i in range(4):
        fail("therapist", ip=IP, now=NOW + timedelta(seconds=i))
    assert accounts.authenticate("therapist", PASSWORD, ip_address=IP, now=NOW + timedelta(seconds=5))


def test_five_failures_from_one_address_across_usernames_pause_that_address(db, world):
    for name in ("therapist", "therapist2", "assistant", "billing", "nobody-here"):
        fail(name, ip=IP, now=NOW)
    at = NOW + timedelta(minutes=1)
    with pytest.raises(Throttled):
        accounts.authenticate("admin", PASSWORD, ip_address=IP, now=at)
    # The same account from another address is fine: it is the address that is paused.
    assert accounts.authenticate("admin", PASSWORD, ip_address="192.0.2.99", now=at).id == world.admin.id
    assert accounts.authenticate("admin", PASSWORD, ip_address=IP, now=NOW + WINDOW + timedelta(seconds=1))


# ---------------------------------------------------------------- change_password


def test_change_password_refuses_a_wrong_current_password(db, world):
    before = world.therapist.get_id()
    with pytest.raises(ValidationFailed) as excinfo:
        accounts.change_password(Actor(world.therapist), "not-my-password", "a-brand-new-secret", now=NOW + timedelta(hours=1))
    assert set(excinfo.value.errors) == {"current_password"}
    db.session.expire_all()
    assert world.therapist.get_id() == before
    assert accounts.authenticate("therapist", PASSWORD, ip_address=IP, now=NOW + timedelta(hours=1))


@pytest.mark.parametrize("new", ["elevenchars", "", "my-therapist-pass"], ids=["11-chars", "empty", "has-username"])
def test_change_password_refuses_a_weak_new_password(db, world, new):
    with pytest.raises(ValidationFailed) as excinfo:
        accounts.change_password(Actor(world.therapist), PASSWORD, new, now=NOW + timedelta(hours=1))
    assert set(excinfo.value.errors) == {"new_password"}
    db.session.expire_all()
    assert accounts.authenticate("therapist", PASSWORD, ip_address=IP, now=NOW + timedelta(hours=1))


def test_change_password_changes_the_session_id_and_the_password(db, world):
    user = world.therapist
    before = user.get_id()
    at = NOW + timedelta(days=3)
    accounts.change_password(Actor(user, IP), PASSWORD, "a-brand-new-secret", now=at)
    db.session.expire_all()
    assert user.password_changed_at == at
    assert user.get_id() != before
    accounts.change_password(Actor(user, IP), "a-brand-new-secret", "another-new-secret", now=at)
    db.session.expire_all()
    assert user.get_id() not in {before, f"{user.id}:2"}, "a second change in the same second ends sessions too"
    accounts.change_password(Actor(user, IP), "another-new-secret", "a-brand-new-secret", now=at)
    entry = audit_entries(db, AuditEntry.action == "change_password")[0]
    assert (entry.actor_id, entry.record_id, entry.ip_address, entry.at) == (user.id, user.id, IP, at)
    fail("therapist", ip=IP, now=at + timedelta(seconds=1), password=PASSWORD)
    assert accounts.authenticate("therapist", "a-brand-new-secret", ip_address=IP, now=at + timedelta(seconds=2))


# ---------------------------------------------------------------- API tokens


def test_token_is_stored_only_as_its_hash(db, world):
    token, record = accounts.create_api_token(Actor(world.therapist), "cli", expires_in_days=30, now=NOW)
    row = db.session.execute(sa.text("SELECT * FROM api_tokens")).mappings().one()
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(value) for value in row.values())
    assert token.startswith(row["prefix"]) and len(row["prefix"]) < len(token) // 2
    assert record.expires_at == NOW + timedelta(days=30)


def test_user_for_token_finds_the_owner_and_stamps_last_use(db, world):
    token, record = accounts.create_api_token(Actor(world.therapist), "cli", expires_in_days=None, now=NOW)
    at = NOW + timedelta(days=400)
    assert accounts.user_for_token(token, now=at).id == world.therapist.id
    db.session.expire_all()
    assert db.session.get(ApiToken, record.id).last_used_at == at
    assert accounts.user_for_token(token + "x", now=at) is None
    assert accounts.user_for_token("", now=at) is None


@pytest.mark.parametrize(("age", "works"), [
    (timedelta(days=30) - timedelta(seconds=1), True),
    (timedelta(days=30), False),
    (timedelta(days=31), False),
], ids=["just-before-expiry", "at-expiry", "after-expiry"])
def test_expired_token_returns_none(db, world, age, works):
    token, _ = accounts.create_api_token(Actor(world.therapist), "cli", expires_in_days=30, now=NOW)
    user = accounts.user_for_token(token, now=NOW + age)
    assert (user is not None) is works


def test_revoked_token_returns_none(db, world):
    token, record = accounts.create_api_token(Actor(world.therapist), "cli", expires_in_days=None, now=NOW)
    other, _ = accounts.create_api_token(Actor(world.therapist), "phone", expires_in_days=None, now=NOW)
    accounts.revoke_api_token(Actor(world.therapist), record.id, now=NOW + timedelta(minutes=5))
    assert accounts.user_for_token(token, now=NOW + timedelta(minutes=6)) is None
    assert accounts.user_for_token(other, now=NOW + timedelta(minutes=6)).id == world.therapist.id
    assert db.session.get(ApiToken, record.id).revoked_at == NOW + timedelta(minutes=5)


def test_deactivated_users_token_returns_none(db, world):
    token, _ = accounts.create_api_token(Actor(world.therapist2), "cli", expires_in_days=None, now=NOW)
    accounts.set_user_active(Actor(world.admin), world.therapist2.id, False, now=NOW + timedelta(minutes=1))
    assert accounts.user_for_token(token, now=NOW + timedelta(minutes=2)) is None


def test_revoking_someone_elses_token_is_not_found(db, world):
    token, record = accounts.create_api_token(Actor(world.therapist), "cli", expires_in_days=None, now=NOW)
    with pytest.raises(NotFound):
        accounts.revoke_api_token(Actor(world.therapist2), record.id, now=NOW)
    with pytest.raises(NotFound):
        accounts.revoke_api_token(Actor(world.admin), record.id, now=NOW)
    with pytest.raises(NotFound):
        accounts.revoke_api_token(Actor(world.therapist), record.id + 1000, now=NOW)
    assert accounts.user_for_token(token, now=NOW).id == world.therapist.id


# ---------------------------------------------------------------- audit log


def test_reading_a_patient_leaves_an_audit_entry(db, world):
    at = NOW + timedelta(hours=2, minutes=7)
    accounts.get_patient(Actor(world.therapist, "10.0.0.7"), world.patient.id, now=at)
    (entry,) = audit_entries(db, AuditEntry.at == at)
    assert (entry.actor_id, entry.actor_role, entry.action, entry.record_type, entry.record_id,
            entry.patient_id, entry.ip_address, entry.at) == (
        world.therapist.id, "therapist", "read", "patient", world.patient.id, world.patient.id, "10.0.0.7", at)


def test_writing_a_patient_leaves_an_audit_entry(db, world):
    at = NOW + timedelta(hours=3, minutes=11)
    patient = accounts.update_patient(Actor(world.assistant, "10.0.0.8"), world.patient.id,
                                      {"phone": "+1 312 555 0199"}, now=at)
    assert patient.phone == "+13125550199"
    assert patient.updated_at == at
    (entry,) = audit_entries(db, AuditEntry.at == at)
    assert (entry.actor_id, entry.actor_role, entry.action, entry.record_type, entry.record_id,
            entry.patient_id, entry.ip_address, entry.at) == (
        world.assistant.id, "assistant", "update", "patient", world.patient.id, world.patient.id, "10.0.0.8", at)
    assert "phone" in entry.detail


def test_search_writes_one_list_entry_per_patient_returned(db, world):
    accounts.create_patient(Actor(world.therapist), patient_data(first_name="Dee", last_name="Zimmer"), now=NOW)
    at = NOW + timedelta(hours=4)
    page = accounts.search_patients(Actor(world.admin, IP), query=None, page=1, page_size=2, now=at)
    assert page.total == 3 and len(page.items) == 2
    entries = audit_entries(db, AuditEntry.at == at)
    assert sorted(e.patient_id for e in entries) == sorted(p.id for p in page.items)
    assert {(e.action, e.actor_id, e.ip_address, e.record_type) for e in entries} == {("list", world.admin.id, IP, "patient")}
    assert all(e.record_id == e.patient_id for e in entries)

    later = at + timedelta(seconds=1)
    empty = accounts.search_patients(Actor(world.admin, IP), query="no-such-name", page=1, page_size=20, now=later)
    assert empty.items == []
    assert audit_entries(db, AuditEntry.at == later) == []


def test_refused_read_is_not_audited_as_a_read(db, world):
    at = NOW + timedelta(hours=5)
    with pytest.raises(NotFound):
        accounts.get_patient(Actor(world.therapist), world.other_patient.id, now=at)
    assert audit_entries(db, AuditEntry.at == at) == []


# ---------------------------------------------------------------- consent


def test_consent_record_and_revoke_keeps_history(db, world):
    granted_at, revoked_at, regranted_at = NOW, NOW + timedelta(days=10), NOW + timedelta(days=20)
    first = accounts.record_consent(Actor(world.therapist), world.patient.id, "telehealth", method="written",
                                    note="signed form", now=granted_at)
    assert (first.kind, first.granted_at, first.recorded_by_id, first.revoked_at) == (
        "telehealth", granted_at, world.therapist.id, None)

    with pytest.raises(ValidationFailed) as excinfo:
        accounts.record_consent(Actor(world.assistant), world.patient.id, "telehealth", method="verbal",
                                note=None, now=granted_at + timedelta(days=1))
    assert set(excinfo.value.errors) == {"kind"}
    assert count(db, Consent) == 1

    # Another kind is independent.
    accounts.record_consent(Actor(world.therapist), world.patient.id, "sms", method="electronic", note=None,
                            now=granted_at)

    accounts.revoke_consent(Actor(world.assistant), first.id, note="patient asked", now=revoked_at)
    db.session.expire_all()
    row = db.session.get(Consent, first.id)
    assert (row.revoked_at, row.revoked_by_id, row.revocation_note) == (revoked_at, world.assistant.id, "patient asked")

    with pytest.raises(ValidationFailed):
        accounts.revoke_consent(Actor(world.therapist), first.id, note=None, now=revoked_at)

    second = accounts.record_consent(Actor(world.therapist2), world.patient.id, "telehealth", method="verbal",
                                     note=None, now=regranted_at)
    history = list(db.session.scalars(
        select(Consent).where(Consent.patient_id == world.patient.id, Consent.kind == "telehealth")
        .order_by(Consent.granted_at)))
    assert [(c.id, c.granted_at, c.revoked_at, c.recorded_by_id) for c in history] == [
        (first.id, granted_at, revoked_at, world.therapist.id),
        (second.id, regranted_at, None, world.therapist2.id),
    ]
    actions = [(e.action, e.record_id, e.at) for e in audit_entries(db, AuditEntry.record_type == "consent")]
    assert ("grant_consent", first.id, granted_at) in actions
    assert ("revoke_consent", first.id, revoked_at) in actions
    assert ("grant_consent", second.id, regranted_at) in actions


def test_second_active_consent_in_one_session_is_refused(db, world):
    # One session throughout (as a CLI command or job would use): the check must not read a stale
    # consents collection loaded by the first call.
    world.patient.consents  # noqa: B018 - loaded before the first grant, as a page showing the patient would
    accounts.record_consent(Actor(world.therapist), world.patient.id, "rtm", method="written", note=None, now=NOW)
    with pytest.raises(ValidationFailed) as excinfo:
        accounts.record_consent(Actor(world.therapist), world.patient.id, "rtm", method="verbal", note=None,
                                now=NOW + timedelta(minutes=1))
    assert set(excinfo.value.errors) == {"kind"}
    active = count(db, Consent, Consent.patient_id == world.patient.id, Consent.kind == "rtm",
                   Consent.revoked_at.is_(None))
    assert active == 1


@pytest.mark.parametrize("role", ["billing", "patient"])
def test_consent_cannot_be_recorded_by_billing_or_the_patient(db, world, role):
    with pytest.raises(Forbidden):
        accounts.record_consent(Actor(world.user(role)), world.patient.id, "rtm", method="written", note=None,
                                now=NOW)
    assert count(db, Consent) == 0


def test_consent_of_another_clinics_patient_is_not_found(db, world):
    consent = accounts.record_consent(Actor(world.other_therapist), world.other_patient.id, "rtm",
                                      method="written", note=None, now=NOW)
    with pytest.raises(NotFound):
        accounts.record_consent(Actor(world.therapist), world.other_patient.id, "sms", method="written",
                                note=None, now=NOW)
    with pytest.raises(NotFound):
        accounts.revoke_consent(Actor(world.therapist), consent.id, note=None, now=NOW)
    assert db.session.get(Consent, consent.id).revoked_at is None


# ---------------------------------------------------------------- patient scoping


def visible(world, who: str) -> set[str]:
    return {
        "therapist": {"patient"}, "assistant": {"patient"}, "billing": {"patient"},
        "other_therapist": {"other_patient"}, "foreign_therapist": {"foreign_patient"},
        "admin": {"patient", "other_patient"}, "patient_user": {"patient"},
    }[who]


@pytest.mark.parametrize("who", ["therapist", "assistant", "billing", "other_therapist", "foreign_therapist",
                                 "admin", "patient_user"])
def test_search_patients_is_scoped(db, world, who):
    # A second patient in the first clinic, without a sign-in: the patient user must still see only self.
    extra = accounts.create_patient(Actor(world.therapist), patient_data(first_name="Dee"), now=NOW)
    actor = Actor(getattr(world, who))
    page = accounts.search_patients(actor, query=None, page=1, page_size=100, now=NOW)
    expected = {getattr(world, name).id for name in visible(world, who)}
    if who in ("therapist", "assistant", "billing", "admin"):
        expected.add(extra.id)
    assert {p.id for p in page.items} == expected
    assert page.total == len(expected)
    # A search by name cannot reach outside the scope either ("Cy" is the foreign patient's name).
    found = accounts.search_patients(actor, query="Cy", page=1, page_size=100, now=NOW).items
    assert {p.id for p in found} == expected & {world.foreign_patient.id}


@pytest.mark.parametrize(("who", "target"), [
    ("therapist", "other_patient"), ("therapist", "foreign_patient"), ("assistant", "other_patient"),
    ("billing", "other_patient"), ("other_therapist", "patient"), ("admin", "foreign_patient"),
    ("patient_user", "other_patient"), ("foreign_therapist", "patient"),
])
def test_patient_outside_scope_is_not_found(db, world, who, target):
    actor = Actor(getattr(world, who))
    patient_id = getattr(world, target).id
    with pytest.raises(NotFound):
        accounts.get_patient(actor, patient_id, now=NOW)
    with pytest.raises(NotFound):
        careplans.episodes_of_patient(actor, patient_id, now=NOW)


@pytest.mark.parametrize("who", ["therapist", "assistant", "admin", "other_therapist"])
def test_update_of_patient_outside_scope_is_not_found_and_changes_nothing(db, world, who):
    target = world.foreign_patient if who != "other_therapist" else world.patient
    with pytest.raises(NotFound):
        accounts.update_patient(Actor(getattr(world, who)), target.id, {"first_name": "Hacked"}, now=NOW)
    db.session.expire_all()
    assert target.first_name != "Hacked"


def test_episode_of_another_clinic_is_not_found(db, world):
    with pytest.raises(NotFound):
        careplans.get_episode(Actor(world.therapist), world.other_episode.id, now=NOW)
    with pytest.raises(NotFound):
        careplans.update_episode(Actor(world.therapist), world.other_episode.id, {"title": "x"}, now=NOW)


# ---------------------------------------------------------------- episodes


@pytest.mark.parametrize("role", ["assistant", "admin", "billing", "patient"])
def test_only_a_therapist_creates_an_episode(db, world, role):
    before = count(db, Episode)
    with pytest.raises(Forbidden):
        careplans.create_episode(Actor(world.user(role)), world.patient.id, episode_data(), now=NOW)
    assert count(db, Episode) == before


@pytest.mark.parametrize("role", ["assistant", "admin", "billing", "patient"])
def test_only_a_therapist_updates_an_episode(db, world, role):
    with pytest.raises(Forbidden):
        careplans.update_episode(Actor(world.user(role)), world.episode.id, {"title": "Changed"}, now=NOW)
    db.session.expire_all()
    assert db.session.get(Episode, world.episode.id).title == "Right knee OA"


def test_create_episode_refuses_91_day_certification_and_writes_nothing(db, world):
    start = date(2026, 4, 1)
    counts = [count(db, model) for model in (Episode, EpisodeDiagnosis, EpisodeGoal, AuditEntry)]
    data = episode_data(start_date=start, certification_end=date(2026, 6, 30))  # day 91
    with pytest.raises(ValidationFailed) as excinfo:
        careplans.create_episode(Actor(world.therapist), world.patient.id, data, now=NOW)
    assert "certification_end" in excinfo.value.errors
    db.session.rollback()
    assert [count(db, model) for model in (Episode, EpisodeDiagnosis, EpisodeGoal, AuditEntry)] == counts


def test_create_episode_accepts_exactly_90_days_and_audits(db, world):
    start = date(2026, 4, 1)
    at = NOW + timedelta(hours=6)
    episode = careplans.create_episode(
        Actor(world.therapist, IP), world.patient.id,
        episode_data(start_date=start, certification_end=date(2026, 6, 29), diagnoses=["m1711", "Z96.651"]),
        now=at)
    db.session.expire_all()
    episode = db.session.get(Episode, episode.id)
    assert episode.certification_end == date(2026, 6, 29)
    assert episode.diagnosis_codes == ["M17.11", "Z96.651"]
    assert (episode.clinic_id, episode.therapist_id, episode.status) == (
        world.patient.clinic_id, world.therapist.id, "active")
    (entry,) = audit_entries(db, AuditEntry.at == at)
    assert (entry.action, entry.record_type, entry.record_id, entry.patient_id, entry.ip_address) == (
        "create", "episode", episode.id, world.patient.id, IP)


def test_update_episode_replaces_diagnoses_in_order_and_goals(db, world):
    actor = Actor(world.therapist)
    episode_id = world.episode.id
    steps = [
        ["Z96.651", "m1711", "M25.561"],
        ["M25.561", "M17.11"],  # codes swap positions: the unique (episode, code) rows must not clash
        ["M17.11", "M25.561", "S83.511A"],
        ["S83511A"],
    ]
    for i, codes in enumerate(steps, 1):
        careplans.update_episode(actor, episode_id, {"diagnoses": codes}, now=NOW + timedelta(minutes=i))
        db.session.expire_all()
        episode = db.session.get(Episode, episode_id)
        expected = [{"m1711": "M17.11", "S83511A": "S83.511A"}.get(c, c) for c in codes]
        assert episode.diagnosis_codes == expected
        assert [d.position for d in episode.diagnoses] == list(range(1, len(codes) + 1))
        assert count(db, EpisodeDiagnosis, EpisodeDiagnosis.episode_id == episode_id) == len(codes)

    goals = [{"description": "Walk 1 km without a cane", "target_date": date(2026, 4, 15)},
             {"description": "Kneel to garden for 10 minutes"}]
    careplans.update_episode(actor, episode_id, {"goals": goals}, now=NOW + timedelta(hours=1))
    db.session.expire_all()
    episode = db.session.get(Episode, episode_id)
    assert [(g.position, g.description, g.target_date) for g in episode.goals] == [
        (1, "Walk 1 km without a cane", date(2026, 4, 15)), (2, "Kneel to garden for 10 minutes", None)]
    assert count(db, EpisodeGoal, EpisodeGoal.episode_id == episode_id) == 2
    assert episode.updated_at == NOW + timedelta(hours=1)
    assert episode.diagnosis_codes == ["S83.511A"]  # untouched by a goals-only update


def test_update_to_discharged_without_date_names_discharge_date(db, world):
    with pytest.raises(ValidationFailed) as excinfo:
        careplans.update_episode(Actor(world.therapist), world.episode.id,
                                 {"status": "discharged", "discharge_reason": "goals_met"}, now=NOW)
    assert set(excinfo.value.errors) == {"discharge_date"}
    db.session.rollback()
    db.session.expire_all()
    assert db.session.get(Episode, world.episode.id).status == "active"

    episode = careplans.update_episode(
        Actor(world.therapist), world.episode.id,
        {"status": "discharged", "discharge_reason": "goals_met", "discharge_date": date(2026, 4, 20)}, now=NOW)
    assert (episode.status, episode.discharge_date) == ("discharged", date(2026, 4, 20))


def test_update_episode_checks_certification_against_stored_values(db, world):
    # Only the end is sent; the stored start makes it 91 days.
    with pytest.raises(ValidationFailed) as excinfo:
        careplans.update_episode(Actor(world.therapist), world.episode.id,
                                 {"certification_end": date(2026, 5, 31)}, now=NOW)
    assert set(excinfo.value.errors) == {"certification_end"}


# ---------------------------------------------------------------- users


@pytest.mark.parametrize("username", ["therapist", "Therapist", " THERAPIST "], ids=["same", "title", "upper-spaced"])
def test_create_user_refuses_a_taken_username(db, world, username):
    before = count(db, User)
    with pytest.raises(ValidationFailed) as excinfo:
        make_user(world.clinic.organisation_id, username, "assistant", world.clinic.id)
    assert set(excinfo.value.errors) == {"username"}
    assert count(db, User) == before


@pytest.mark.parametrize("actor", ["system", "admin"])
def test_therapist_without_npi_is_refused(db, world, actor):
    before = count(db, User)
    with pytest.raises(ValidationFailed) as excinfo:
        accounts.create_user(SYSTEM if actor == "system" else Actor(world.admin), {
            "organisation_id": world.clinic.organisation_id, "username": "newpt", "full_name": "New PT",
            "role": "therapist", "clinic_id": world.clinic.id, "password": PASSWORD, "npi": None,
        }, now=NOW)
    assert set(excinfo.value.errors) == {"npi"}
    assert count(db, User) == before


def test_admin_creates_a_user_in_their_own_organisation(db, world):
    user = accounts.create_user(Actor(world.admin), {
        "organisation_id": world.foreign_clinic.organisation_id,  # ignored: the admin's organisation wins
        "username": "NewPTA", "full_name": "New PTA", "role": "assistant", "clinic_id": world.clinic.id,
        "password": PASSWORD,
    }, now=NOW)
    assert (user.username, user.organisation_id) == ("newpta", world.clinic.organisation_id)


@pytest.mark.parametrize("role", ["therapist", "assistant", "billing", "patient"])
def test_only_an_admin_creates_users(db, world, role):
    with pytest.raises(Forbidden):
        accounts.create_user(Actor(world.user(role)), {
            "organisation_id": world.clinic.organisation_id, "username": "sneaky", "full_name": "Sneaky",
            "role": "admin", "clinic_id": None, "password": PASSWORD,
        }, now=NOW)


def test_admin_cannot_deactivate_self(db, world):
    with pytest.raises(ValidationFailed) as excinfo:
        accounts.set_user_active(Actor(world.admin), world.admin.id, False, now=NOW)
    assert set(excinfo.value.errors) == {"active"}
    db.session.expire_all()
    assert db.session.get(User, world.admin.id).is_active_account is True


def test_deactivation_changes_the_session_id(db, world):
    before = world.therapist2.get_id()
    accounts.set_user_active(Actor(world.admin), world.therapist2.id, False, now=NOW + timedelta(minutes=3))
    db.session.expire_all()
    user = db.session.get(User, world.therapist2.id)
    assert user.is_active is False
    assert user.get_id() != before


def test_admin_cannot_deactivate_a_user_of_another_organisation(db, world):
    with pytest.raises(NotFound):
        accounts.set_user_active(Actor(world.admin), world.foreign_therapist.id, False, now=NOW)


# ---------------------------------------------------------------- UTCDateTime


def test_naive_datetime_is_refused(db):
    db.session.add(LoginAttempt(at=datetime(2026, 3, 2, 15, 0), username="x", ip_address=IP, succeeded=False))
    with pytest.raises(sa.exc.StatementError, match="naive"):
        db.session.flush()
    db.session.rollback()
    assert count(db, LoginAttempt) == 0


def test_aware_datetime_round_trips_as_utc(db):
    chicago = datetime(2026, 3, 2, 9, 30, tzinfo=ZoneInfo("America/Chicago"))  # CST, UTC-6
    db.session.add(LoginAttempt(at=chicago, username="x", ip_address=IP, succeeded=False))
    db.session.commit()
    db.session.expire_all()
    stored = db.session.scalar(select(LoginAttempt.at))
    assert stored == datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
    assert stored.tzinfo is UTC
    assert stored.hour == 15
    if db.engine.dialect.name == "sqlite":
        raw = db.session.execute(sa.text("SELECT at FROM login_attempts")).scalar_one()
        assert str(raw).startswith("2026-03-02 15:30:00")
    # Comparisons in SQL use the same instant.
    assert count(db, LoginAttempt, LoginAttempt.at == datetime(2026, 3, 2, 16, 30, tzinfo=ZoneInfo("Europe/Paris"))) == 1



def test_the_database_refuses_a_second_active_consent_of_a_kind(db, world):
    """Two concurrent requests could both pass the Python check; the partial unique index cannot."""
    from sqlalchemy.exc import IntegrityError

    from telerehab.accounts.models import Consent

    for _ in range(2):
        db.session.add(Consent(patient_id=world.patient.id, kind="rtm", granted_at=NOW,
                               recorded_by_id=world.therapist.id, method="written"))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
    revoked = Consent(patient_id=world.patient.id, kind="rtm", granted_at=NOW, recorded_by_id=world.therapist.id,
                      method="written", revoked_at=NOW, revoked_by_id=world.therapist.id)
    db.session.add_all([revoked, Consent(patient_id=world.patient.id, kind="rtm", granted_at=NOW,
                                         recorded_by_id=world.therapist.id, method="written")])
    db.session.flush()  # a revoked one beside an active one is history, and allowed
