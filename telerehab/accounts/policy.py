"""Who may see and do what: the only place authorisation is decided.

Views, API endpoints and operations all ask here. A patient sees only their own records; staff
see only their clinic's patients (organisation-wide staff: every clinic of their organisation);
billing staff see what billing needs and not clinical notes.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Select, select

from telerehab.accounts.models import Clinic, Patient, User
from telerehab.accounts.rules import Role
from telerehab.errors import Forbidden, NotFound


class Permission(StrEnum):
    VIEW_PATIENT = "view_patient"
    EDIT_PATIENT = "edit_patient"
    RECORD_CONSENT = "record_consent"
    VIEW_EPISODE = "view_episode"
    EDIT_EPISODE = "edit_episode"  # the plan of care is the PT's: never an assistant's or admin's
    VIEW_CLINICAL_NOTES = "view_clinical_notes"
    VIEW_VISITS = "view_visits"
    SCHEDULE_VISITS = "schedule_visits"
    DOCUMENT_VISITS = "document_visits"  # write and sign visit notes and services
    COSIGN_NOTES = "cosign_notes"  # the supervising PT co-signs an assistant's note
    MANAGE_CARE_SETTINGS = "manage_care_settings"
    MANAGE_USERS = "manage_users"
    MANAGE_CLINICS = "manage_clinics"
    VIEW_AUDIT_LOG = "view_audit_log"
    # Home exercise and check-ins.
    VIEW_EXERCISE_LIBRARY = "view_exercise_library"
    MANAGE_EXERCISES = "manage_exercises"  # add the clinic's own exercises to the library
    VIEW_PROGRAM = "view_program"
    EDIT_PROGRAM = "edit_program"  # progressing the home program is within a PTA's scope
    RECORD_CHECKIN = "record_checkin"
    VIEW_CHECKINS = "view_checkins"  # billing sees data days, never the patient's notes
    # Text messages: a patient's texts may carry clinical content, so clinicians only.
    VIEW_MESSAGES = "view_messages"  # the clinic's inbound texts and a patient's conversation
    SEND_MESSAGES = "send_messages"  # a manual text to a patient; their reminder settings
    # Video visits: entering the visit's room (the visit's own patient and clinicians only, see
    # telerehab.video.operations.room_role); running it (admit, invite, capture, record, log minutes);
    # the care team's view of recordings and captured stills.
    JOIN_VIDEO_VISITS = "join_video_visits"
    RUN_VIDEO_VISITS = "run_video_visits"
    VIEW_RECORDINGS = "view_recordings"
    # Remote therapeutic monitoring: the RTM panel, triage and billable lines (billing sees data
    # days, minutes and lines, never notes); logging management minutes (PT and PTA); enrolling an
    # episode, recording its set-up session, ending it, RPM periods and the year-to-date amount.
    VIEW_MONITORING = "view_monitoring"
    LOG_MANAGEMENT_TIME = "log_management_time"
    MANAGE_RTM_ENROLMENT = "manage_rtm_enrolment"
    # The year-to-date therapy amount from the MAC's threshold inquiry (KX): billing's work, the
    # PT's or the admin's; not an assistant's.
    RECORD_THERAPY_AMOUNT = "record_therapy_amount"
    # Assessments: results, trends and goniometry stills are clinical records, so billing never
    # sees them; a patient sees their own trends. Recording (and marking stills) is for PT and PTA.
    VIEW_ASSESSMENTS = "view_assessments"
    RECORD_ASSESSMENTS = "record_assessments"
    # The billing workbench: review, hold and approve lines, export and correct claims, the fee
    # schedule and claim settings. A therapist sees only where their own patients' lines stand.
    MANAGE_BILLING = "manage_billing"
    VIEW_OWN_BILLING_STATUS = "view_own_billing_status"


_ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset({
        Permission.VIEW_PATIENT, Permission.EDIT_PATIENT, Permission.RECORD_CONSENT,
        Permission.VIEW_EPISODE, Permission.VIEW_VISITS, Permission.SCHEDULE_VISITS,
        Permission.MANAGE_CARE_SETTINGS, Permission.MANAGE_USERS, Permission.MANAGE_CLINICS,
        Permission.VIEW_AUDIT_LOG, Permission.VIEW_EXERCISE_LIBRARY, Permission.VIEW_PROGRAM,
        Permission.VIEW_CHECKINS, Permission.VIEW_MONITORING, Permission.RECORD_THERAPY_AMOUNT,
        Permission.MANAGE_BILLING,
    }),
    Role.THERAPIST: frozenset({
        Permission.JOIN_VIDEO_VISITS, Permission.RUN_VIDEO_VISITS, Permission.VIEW_RECORDINGS,
        Permission.VIEW_MONITORING, Permission.LOG_MANAGEMENT_TIME, Permission.MANAGE_RTM_ENROLMENT,
        Permission.RECORD_THERAPY_AMOUNT, Permission.VIEW_ASSESSMENTS, Permission.RECORD_ASSESSMENTS,
        Permission.VIEW_PATIENT, Permission.EDIT_PATIENT, Permission.RECORD_CONSENT,
        Permission.VIEW_EPISODE, Permission.EDIT_EPISODE, Permission.VIEW_CLINICAL_NOTES,
        Permission.VIEW_VISITS, Permission.SCHEDULE_VISITS, Permission.DOCUMENT_VISITS,
        Permission.COSIGN_NOTES, Permission.VIEW_EXERCISE_LIBRARY, Permission.MANAGE_EXERCISES,
        Permission.VIEW_PROGRAM, Permission.EDIT_PROGRAM, Permission.RECORD_CHECKIN,
        Permission.VIEW_CHECKINS, Permission.VIEW_MESSAGES, Permission.SEND_MESSAGES,
        Permission.VIEW_OWN_BILLING_STATUS,
    }),
    Role.ASSISTANT: frozenset({
        Permission.JOIN_VIDEO_VISITS, Permission.RUN_VIDEO_VISITS, Permission.VIEW_RECORDINGS,
        Permission.VIEW_MONITORING, Permission.LOG_MANAGEMENT_TIME,
        Permission.VIEW_ASSESSMENTS, Permission.RECORD_ASSESSMENTS,
        Permission.VIEW_PATIENT, Permission.EDIT_PATIENT, Permission.RECORD_CONSENT,
        Permission.VIEW_EPISODE, Permission.VIEW_CLINICAL_NOTES, Permission.VIEW_VISITS,
        Permission.SCHEDULE_VISITS, Permission.DOCUMENT_VISITS, Permission.VIEW_EXERCISE_LIBRARY,
        Permission.MANAGE_EXERCISES, Permission.VIEW_PROGRAM, Permission.EDIT_PROGRAM,
        Permission.RECORD_CHECKIN, Permission.VIEW_CHECKINS, Permission.VIEW_MESSAGES,
        Permission.SEND_MESSAGES,
    }),
    # Visits, charges and data days; never notes, nor texts.
    Role.BILLING: frozenset({
        Permission.VIEW_PATIENT, Permission.VIEW_EPISODE, Permission.VIEW_VISITS, Permission.VIEW_CHECKINS,
        Permission.VIEW_MONITORING, Permission.RECORD_THERAPY_AMOUNT, Permission.MANAGE_BILLING,
    }),
    # A patient's own records only; scoping below makes "own" true.
    Role.PATIENT: frozenset({
        Permission.JOIN_VIDEO_VISITS, Permission.VIEW_ASSESSMENTS,
        Permission.VIEW_PATIENT, Permission.VIEW_EPISODE, Permission.VIEW_VISITS, Permission.VIEW_PROGRAM,
        Permission.RECORD_CHECKIN, Permission.VIEW_CHECKINS,
    }),
}


def has_permission(user: User, permission: Permission) -> bool:
    return user.is_active and permission in _ROLE_PERMISSIONS.get(Role(user.role), frozenset())


def require_permission(user: User, permission: Permission) -> None:
    if not has_permission(user, permission):
        raise Forbidden("You do not have permission to do this.")


def patient_scope(user: User, query: Select) -> Select:
    """Narrow a query that selects from `patients` to the rows `user` may see."""
    if user.role == Role.PATIENT:
        return query.where(Patient.user_id == user.id)
    if user.clinic_id is not None:
        return query.where(Patient.clinic_id == user.clinic_id)
    return query.where(
        Patient.clinic_id.in_(select(Clinic.id).where(Clinic.organisation_id == user.organisation_id))
    )


def clinic_scope(user: User, query: Select) -> Select:
    """Narrow a query on `clinics` to the clinics `user` works in."""
    if user.clinic_id is not None:
        return query.where(Clinic.id == user.clinic_id)
    return query.where(Clinic.organisation_id == user.organisation_id)


def can_see_patient(user: User, patient: Patient) -> bool:
    # Reads only user_id, clinic_id and clinic.organisation_id: the check-in look-up passes a plain
    # record of those (telerehab.exercises.operations._PatientFacts), so keep it to them.
    if not has_permission(user, Permission.VIEW_PATIENT):
        return False
    if user.role == Role.PATIENT:
        return patient.user_id == user.id
    if user.clinic_id is not None:
        return patient.clinic_id == user.clinic_id
    return patient.clinic.organisation_id == user.organisation_id


def require_patient(user: User, patient: Patient | None, permission: Permission) -> Patient:
    """The patient, if `user` may act on them with `permission`; otherwise NotFound or Forbidden.

    A record outside the user's scope answers NotFound, never revealing that it exists.
    """
    if patient is None or not can_see_patient(user, patient):
        raise NotFound("No such patient.")
    require_permission(user, permission)
    return patient


def can_use_clinic(user: User, clinic: Clinic) -> bool:
    if user.clinic_id is not None:
        return clinic.id == user.clinic_id
    return clinic.organisation_id == user.organisation_id
