"""/api/v1: RTM enrolment of an episode, management time entries, the RTM status."""

from flask.views import MethodView

from telerehab.api import current_actor, make_blueprint
from telerehab.db_types import utc_now
from telerehab.monitoring import operations
from telerehab.monitoring.schemas import (
    EndWriteSchema,
    EnrolmentSchema,
    EnrolmentWriteSchema,
    RpmPeriodSchema,
    RpmPeriodWriteSchema,
    RtmStatusSchema,
    SetupWriteSchema,
    TherapyAmountSchema,
    TherapyAmountWriteSchema,
    TimeEntrySchema,
    TimeEntryWriteSchema,
)

blp = make_blueprint("monitoring_api", __name__, "Remote therapeutic monitoring")


@blp.route("/episodes/<id:episode_id>/rtm")
class RtmStatus(MethodView):
    @blp.response(200, RtmStatusSchema)
    def get(self, episode_id):
        """The episode's RTM status: the running 30-day period's data days and forecast, this month's
        minutes against the tiers, and every decision so far with its reason and evidence."""
        return operations.rtm_status(current_actor(), episode_id, now=utc_now())


@blp.route("/episodes/<id:episode_id>/rtm/enrolment")
class RtmEnrolment(MethodView):
    @blp.arguments(EnrolmentWriteSchema)
    @blp.response(201, EnrolmentSchema)
    def post(self, data, episode_id):
        """Enrol the episode in RTM (the patient's RTM consent must be on file)."""
        return operations.enrol(current_actor(), episode_id, data, now=utc_now())


@blp.route("/episodes/<id:episode_id>/rtm/setup")
class RtmSetup(MethodView):
    @blp.arguments(SetupWriteSchema)
    @blp.response(200, EnrolmentSchema)
    def put(self, data, episode_id):
        """Record the set-up and education session (98975): date, minutes, who ran it."""
        return operations.record_setup(current_actor(), episode_id, data, now=utc_now())


@blp.route("/episodes/<id:episode_id>/rtm/end")
class RtmEnd(MethodView):
    @blp.arguments(EndWriteSchema)
    @blp.response(200, EnrolmentSchema)
    def post(self, data, episode_id):
        """Stop monitoring (the patient opted out, or monitoring ended); collected data stays."""
        return operations.end_monitoring(current_actor(), episode_id, data, now=utc_now())


@blp.route("/episodes/<id:episode_id>/rtm/time-entries")
class RtmTimeEntries(MethodView):
    @blp.arguments(TimeEntryWriteSchema)
    @blp.response(201, TimeEntrySchema)
    def post(self, data, episode_id):
        """Log minutes of treatment management, by the signed-in therapist or assistant."""
        return operations.record_management_time(current_actor(), episode_id, data, now=utc_now())


@blp.route("/patients/<id:patient_id>/rpm-periods")
class RpmPeriods(MethodView):
    @blp.arguments(RpmPeriodWriteSchema)
    @blp.response(201, RpmPeriodSchema)
    def post(self, data, patient_id):
        """Record remote physiologic monitoring billed for the patient: overlapping RTM is held."""
        return operations.record_rpm_period(current_actor(), patient_id, data, now=utc_now())


@blp.route("/patients/<id:patient_id>/therapy-amounts")
class TherapyAmounts(MethodView):
    @blp.arguments(TherapyAmountWriteSchema)
    @blp.response(200, TherapyAmountSchema)
    def put(self, data, patient_id):
        """The patient's year-to-date therapy amount (from the MAC's threshold inquiry), for KX."""
        return operations.record_therapy_amount(current_actor(), patient_id, data, now=utc_now())
