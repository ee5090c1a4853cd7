"""/api/v1: episodes of care (plans of care), their visits, visit notes and services."""

from dataclasses import dataclass

from flask import url_for
from flask.views import MethodView
from marshmallow import RAISE, fields, post_dump

from telerehab.api import current_actor, make_blueprint
from telerehab.careplans import operations
from telerehab.careplans.schemas import (
    AddendumSchema,
    AddendumWriteSchema,
    AlertSchema,
    CadenceConfirmSchema,
    CadenceOptionsSchema,
    CadenceProposalSchema,
    CalendarArgsSchema,
    EmptySchema,
    EpisodeListArgsSchema,
    EpisodePageSchema,
    EpisodeSchema,
    EpisodeWriteSchema,
    NewOfferSchema,
    NoteSchema,
    NoteWriteSchema,
    OfferSchema,
    RecertificationSchema,
    RecertificationWriteSchema,
    RescheduleSchema,
    ServicesWriteSchema,
    VisitDetailSchema,
    VisitSchema,
    VisitServicesSchema,
    VisitStatusResultSchema,
    VisitStatusWriteSchema,
    VisitWriteSchema,
)
from telerehab.db_types import utc_now

blp = make_blueprint("episodes_api", __name__, "Episodes of care (plans of care), visits, notes and services")


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


# ================================================================ visits

def _accept_url(offer) -> str:
    return url_for("episodes_api.OfferAccept", offer_id=offer.id, _external=True)


def _one_tap_url(offer) -> str:
    """The page the patient opens from the SMS link (signing in first, if need be) to take the slot."""
    return url_for("careplans.offer_by_token", token=offer.token, _external=True)


class OfferOutSchema(OfferSchema):
    accept_url = fields.Function(_accept_url, metadata={
        "type": "string", "description": "POST {} here (as the patient or the care team) to accept"})


class NewOfferOutSchema(NewOfferSchema):
    accept_url = fields.Function(_accept_url, metadata={
        "type": "string", "description": "POST {} here (as the patient or the care team) to accept"})
    token = fields.Function(lambda offer: offer.token, metadata={
        "type": "string", "description": "the one-tap secret for the patient's link; shown only here"})
    one_tap_url = fields.Function(_one_tap_url, metadata={
        "type": "string", "description": "the page the patient opens with one tap (the SMS link)"})


class _OfferWithToken:
    """The offer as stored, with the secret only this one answer carries."""

    def __init__(self, offer, token: str):
        self._offer, self.token = offer, token

    def __getattr__(self, name):
        return getattr(self._offer, name)


@dataclass(frozen=True)
class _StatusChange:
    visit: object
    offer: _OfferWithToken | None


class VisitStatusOutSchema(VisitStatusResultSchema):
    """Dumps a `_StatusChange`: the visit's fields, plus `offer`."""

    offer = fields.Nested(NewOfferOutSchema, allow_none=True, metadata={
        "description": "the nearest free video slot that week, when a clinic visit was cancelled"})

    def get_attribute(self, obj, attr, default):
        if attr == "offer":
            return obj.offer
        return super().get_attribute(obj.visit, attr, default)


class NoteOutSchema(NoteSchema):
    needs_cosign = fields.Function(operations.note_needs_cosign, metadata={
        "type": "boolean", "description": "an assistant's note that the supervising PT co-signs"})


@blp.route("/episodes/<id:episode_id>/cadence/preview")
class CadencePreview(MethodView):
    @blp.arguments(CadenceOptionsSchema)
    @blp.response(200, CadenceProposalSchema)
    def post(self, data, episode_id):
        """Propose the episode's whole series of clinic and video visits; nothing is written.

        Edit the proposal as you like, then send its visits to `cadence/confirm`.
        """
        return operations.preview_cadence(current_actor(), episode_id, data, now=utc_now())


@blp.route("/episodes/<id:episode_id>/cadence/confirm")
class CadenceConfirm(MethodView):
    @blp.arguments(CadenceConfirmSchema)
    @blp.response(201, VisitSchema(many=True))
    def post(self, data, episode_id):
        """Schedule a series of visits (as previewed or edited): all of them, or none."""
        visits = [{key: value for key, value in visit.items() if key != "flags"} for visit in data["visits"]]
        return operations.confirm_cadence(current_actor(), episode_id, visits,
                                          clinician_id=data.get("clinician_id"), now=utc_now())


@blp.route("/episodes/<id:episode_id>/visits")
class EpisodeVisits(MethodView):
    @blp.response(200, VisitSchema(many=True))
    def get(self, episode_id):
        """The episode's visits in time order (its timeline), cancelled ones included."""
        return operations.visits_of_episode(current_actor(), episode_id, now=utc_now())

    @blp.arguments(VisitWriteSchema)
    @blp.response(201, VisitSchema)
    def post(self, data, episode_id):
        """Schedule one visit."""
        return operations.schedule_visit(current_actor(), episode_id, data, now=utc_now())


@blp.route("/visits")
class Calendar(MethodView):
    @blp.arguments(CalendarArgsSchema, location="query", unknown=RAISE)
    @blp.response(200, VisitSchema(many=True))
    def get(self, args):
        """Visits you may see between `start` and `end` (at most 42 days), optionally one clinician's."""
        return operations.calendar_visits(current_actor(), clinician_id=args.get("clinician_id"),
                                          start=args["start"], end=args["end"], now=utc_now())


@blp.route("/visits/<id:visit_id>")
class VisitById(MethodView):
    @blp.response(200, VisitDetailSchema)
    def get(self, visit_id):
        """One visit with its services; its note is read at `/visits/{visit_id}/note`."""
        return operations.get_visit(current_actor(), visit_id, now=utc_now())


@blp.route("/visits/<id:visit_id>/reschedule")
class VisitReschedule(MethodView):
    @blp.arguments(RescheduleSchema)
    @blp.response(200, VisitSchema)
    def post(self, data, visit_id):
        """Move a scheduled or checked-in visit."""
        return operations.reschedule_visit(current_actor(), visit_id, data["starts_at"], data["ends_at"],
                                           now=utc_now())


@blp.route("/visits/<id:visit_id>/status")
class VisitStatusChange(MethodView):
    @blp.arguments(VisitStatusWriteSchema)
    @blp.response(200, VisitStatusOutSchema)
    def post(self, data, visit_id):
        """Check in, start, complete, cancel (with a reason) or mark a no-show.

        Cancelling a clinic visit offers the patient the nearest free video slot that week:
        `offer` carries it, with the one-tap secret that only this answer shows.
        """
        now = utc_now()
        visit, token = operations.change_visit_status(current_actor(), visit_id, data["status"],
                                                      reason=data.get("reason"), now=now)
        offer = _OfferWithToken(operations.offer_for_token(token, now=now), token) if token else None
        return _StatusChange(visit, offer)


@blp.route("/patients/<id:patient_id>/visits/upcoming")
class PatientUpcomingVisits(MethodView):
    @blp.response(200, VisitSchema(many=True))
    def get(self, patient_id):
        """The patient's visits still to come, in time order."""
        return operations.upcoming_visits(current_actor(), patient_id, now=utc_now())


@blp.route("/patients/<id:patient_id>/offers")
class PatientOffers(MethodView):
    @blp.response(200, OfferOutSchema(many=True))
    def get(self, patient_id):
        """Video slots offered to the patient in place of cancelled clinic visits, still open."""
        return operations.open_offers_for_patient(current_actor(), patient_id, now=utc_now())


@blp.route("/offers/<id:offer_id>/accept")
class OfferAccept(MethodView):
    @blp.arguments(EmptySchema)
    @blp.response(201, VisitSchema)
    def post(self, data, offer_id):
        """Take an offered video slot: the new video visit. Accepting again returns the same visit."""
        return operations.accept_offer(current_actor(), offer_id, now=utc_now())


# ---------------------------------------------------------------- notes

@blp.route("/visits/<id:visit_id>/note")
class VisitNote(MethodView):
    @blp.response(200, NoteOutSchema)
    def get(self, visit_id):
        """The visit's SOAP note, its signatures and addenda (clinical staff only)."""
        return operations.get_note(current_actor(), visit_id, now=utc_now())

    @blp.arguments(NoteWriteSchema)
    @blp.response(200, NoteOutSchema)
    def put(self, data, visit_id):
        """Write the draft note (the whole of it: a section left out is empty). A signed note is locked."""
        return operations.save_note(current_actor(), visit_id, data, now=utc_now())


@blp.route("/visits/<id:visit_id>/note/sign")
class VisitNoteSign(MethodView):
    @blp.arguments(EmptySchema)
    @blp.response(200, NoteOutSchema)
    def post(self, data, visit_id):
        """Sign your note; it is locked from then on (later changes are addenda)."""
        return operations.sign_note(current_actor(), visit_id, now=utc_now())


@blp.route("/visits/<id:visit_id>/note/cosign")
class VisitNoteCosign(MethodView):
    @blp.arguments(EmptySchema)
    @blp.response(200, NoteOutSchema)
    def post(self, data, visit_id):
        """Co-sign an assistant's signed note, as the supervising physical therapist."""
        return operations.cosign_note(current_actor(), visit_id, now=utc_now())


@blp.route("/visits/<id:visit_id>/note/addenda")
class VisitNoteAddenda(MethodView):
    @blp.arguments(AddendumWriteSchema)
    @blp.response(201, AddendumSchema)
    def post(self, data, visit_id):
        """Add an addendum to a signed note."""
        return operations.add_addendum(current_actor(), visit_id, data["text"], now=utc_now())


# ---------------------------------------------------------------- services and charges

@blp.route("/visits/<id:visit_id>/services")
class VisitServices(MethodView):
    @blp.arguments(ServicesWriteSchema)
    @blp.response(200, VisitServicesSchema)
    def put(self, data, visit_id):
        """Record the services of a completed visit (all of them: this replaces the list).

        Units follow the 8-minute rule over the patient's timed minutes that day; place of
        service and modifiers are derived from the visit.
        """
        lines = operations.set_services(current_actor(), visit_id, data["lines"], audio_only=data["audio_only"],
                                        now=utc_now())
        return {"visit_id": visit_id, "lines": lines}


# ---------------------------------------------------------------- plan-of-care tracking

@blp.route("/episodes/<id:episode_id>/alerts")
class EpisodeAlerts(MethodView):
    @blp.response(200, AlertSchema(many=True))
    def get(self, episode_id):
        """What needs the therapist's attention on this plan of care, most urgent first."""
        return operations.alerts_of_episode(current_actor(), episode_id, now=utc_now())


@blp.route("/episodes/<id:episode_id>/recertifications")
class EpisodeRecertifications(MethodView):
    @blp.arguments(RecertificationWriteSchema)
    @blp.response(201, RecertificationSchema)
    def post(self, data, episode_id):
        """Record a further certification period signed by the physician."""
        return operations.record_recertification(current_actor(), episode_id, data, now=utc_now())
