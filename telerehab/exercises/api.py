"""/api/v1: exercise library, programs, check-ins."""

from flask.views import MethodView
from marshmallow import RAISE, fields, post_dump

from telerehab.api import current_actor, make_blueprint
from telerehab.db_types import utc_now
from telerehab.exercises import operations
from telerehab.exercises.rules import CheckInSource
from telerehab.exercises.schemas import (
    CheckInListArgsSchema,
    CheckInPageSchema,
    CheckInSchema,
    CheckInWriteSchema,
    ClinicExerciseWriteSchema,
    ExercisePageSchema,
    ExerciseSchema,
    ExerciseSearchArgsSchema,
    ProgramArgsSchema,
    ProgramDaySchema,
    ProgramSchema,
    ProgramWriteSchema,
)

blp = make_blueprint("exercises_api", __name__, "Home exercise programmes and check-ins")


class CheckInOutSchema(CheckInSchema):
    """A check-in as the caller may see it: the patient's note is left out for billing staff."""

    @post_dump
    def _without_note(self, data, **kwargs):
        if not operations.may_see_checkin_notes(current_actor()):
            data.pop("note", None)
        return data


class CheckInOutPageSchema(CheckInPageSchema):
    items = fields.List(fields.Nested(CheckInOutSchema))


@blp.route("/exercises")
class Exercises(MethodView):
    @blp.arguments(ExerciseSearchArgsSchema, location="query", unknown=RAISE)
    @blp.response(200, ExercisePageSchema)
    def get(self, args):
        """Search our library and your clinic's own exercises by name, region and equipment."""
        return operations.search_library(
            current_actor(), query=args.get("q"), region=args.get("region"), equipment=args.get("equipment"),
            clinic_id=args.get("clinic_id"), page=args["page"], page_size=args["page_size"], now=utc_now(),
        )

    @blp.arguments(ClinicExerciseWriteSchema)
    @blp.response(201, ExerciseSchema)
    def post(self, data):
        """Add an exercise of your clinic's own to the library."""
        return operations.create_clinic_exercise(current_actor(), data, now=utc_now())


@blp.route("/episodes/<id:episode_id>/program")
class EpisodeProgram(MethodView):
    @blp.arguments(ProgramArgsSchema, location="query", unknown=RAISE)
    @blp.response(200, ProgramDaySchema)
    def get(self, args, episode_id):
        """The home exercise program in force on a day (default: the patient's today)."""
        return operations.get_program_day(current_actor(), episode_id, on=args.get("on"), now=utc_now())

    @blp.arguments(ProgramWriteSchema)
    @blp.response(201, ProgramSchema)
    def post(self, data, episode_id):
        """Change the program: the answer is a new version; earlier versions are kept as they were."""
        return operations.create_program_version(current_actor(), episode_id, data, now=utc_now())


@blp.route("/episodes/<id:episode_id>/program/versions")
class EpisodeProgramVersions(MethodView):
    @blp.response(200, ProgramSchema(many=True))
    def get(self, episode_id):
        """Every version of the program, newest first."""
        return operations.program_history(current_actor(), episode_id, now=utc_now())[1]


@blp.route("/patients/<id:patient_id>/checkins")
class PatientCheckIns(MethodView):
    @blp.arguments(CheckInListArgsSchema, location="query", unknown=RAISE)
    @blp.response(200, CheckInOutPageSchema)
    def get(self, args, patient_id):
        """The patient's check-ins, newest first; `from` and `to` filter on the local date (data day)."""
        return operations.list_checkins(
            current_actor(), patient_id, date_from=args.get("date_from"), date_to=args.get("date_to"),
            page=args["page"], page_size=args["page_size"], now=utc_now(),
        )

    @blp.arguments(CheckInWriteSchema)
    @blp.response(201, CheckInOutSchema)
    @blp.alt_response(200, schema=CheckInOutSchema,
                      description="This client_id was stored before: the first check-in, unchanged.")
    def post(self, data, patient_id):
        """Record a check-in. Send it again with the same client_id as often as needed: one is stored."""
        checkin, created = operations.record_checkin(
            current_actor(), patient_id, data, source=CheckInSource.API, now=utc_now())
        return (checkin, 201) if created else (checkin, 200)
