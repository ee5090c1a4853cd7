"""/api/v1: episodes of care (plans of care)."""

from flask.views import MethodView
from marshmallow import RAISE, fields, post_dump

from telerehab.api import current_actor, make_blueprint
from telerehab.careplans import operations
from telerehab.careplans.schemas import (
    EpisodeListArgsSchema,
    EpisodePageSchema,
    EpisodeSchema,
    EpisodeWriteSchema,
)
from telerehab.db_types import utc_now

blp = make_blueprint("episodes_api", __name__, "Episodes of care (plans of care)")


class EpisodeOutSchema(EpisodeSchema):
    """An episode as the caller may see it: `plan_notes` is left out for non-clinical staff."""

    @post_dump
    def _without_clinical_notes(self, data, **kwargs):
        if not operations.may_see_plan_notes(current_actor()):
            data.pop("plan_notes", None)
        return data


class EpisodeOutPageSchema(EpisodePageSchema):
    items = fields.List(fields.Nested(EpisodeOutSchema))


@blp.route("/episodes")
class Episodes(MethodView):
    @blp.arguments(EpisodeListArgsSchema, location="query", unknown=RAISE)  # a misspelt filter is an error, not ignored
    @blp.response(200, EpisodeOutPageSchema)
    def get(self, args):
        """Episodes you may see; `q` searches title and patient name."""
        return operations.search_episodes(
            current_actor(), query=args.get("q"), status=args.get("status"), page=args["page"],
            page_size=args["page_size"], now=utc_now(),
        )


@blp.route("/patients/<id:patient_id>/episodes")
class PatientEpisodes(MethodView):
    @blp.response(200, EpisodeOutSchema(many=True))
    def get(self, patient_id):
        return operations.episodes_of_patient(current_actor(), patient_id, now=utc_now())

    @blp.arguments(EpisodeWriteSchema)
    @blp.response(201, EpisodeOutSchema)
    def post(self, data, patient_id):
        """Open an episode (plan of care) for a patient."""
        return operations.create_episode(current_actor(), patient_id, data, now=utc_now())


@blp.route("/episodes/<id:episode_id>")
class EpisodeById(MethodView):
    @blp.response(200, EpisodeOutSchema)
    def get(self, episode_id):
        return operations.get_episode(current_actor(), episode_id, now=utc_now())

    @blp.arguments(EpisodeWriteSchema(partial=True))
    @blp.response(200, EpisodeOutSchema)
    def patch(self, data, episode_id):
        return operations.update_episode(current_actor(), episode_id, data, now=utc_now())
