"""/api/v1: patients, their consents, the caller's own account and API tokens."""

from flask.views import MethodView
from marshmallow import RAISE

from telerehab.accounts import operations
from telerehab.accounts.schemas import (
    ConsentRevokeSchema,
    ConsentSchema,
    NewTokenSchema,
    PageArgsSchema,
    PatientPageSchema,
    PatientSchema,
    PatientWriteSchema,
    TokenCreateSchema,
    TokenSchema,
    UserSchema,
)
from telerehab.api import current_actor, make_blueprint
from telerehab.db_types import utc_now

blp = make_blueprint("patients_api", __name__, "Patients, consent, and your account")


@blp.route("/patients")
class Patients(MethodView):
    @blp.arguments(PageArgsSchema, location="query", unknown=RAISE)  # a misspelt filter is an error, not ignored
    @blp.response(200, PatientPageSchema)
    def get(self, args):
        """Patients you may see; `q` searches name, phone, email and member id."""
        return operations.search_patients(
            current_actor(), query=args.get("q"), page=args["page"], page_size=args["page_size"],
            now=utc_now(),
        )

    @blp.arguments(PatientWriteSchema)
    @blp.response(201, PatientSchema)
    def post(self, data):
        """Register a patient."""
        return operations.create_patient(current_actor(), data, now=utc_now())


@blp.route("/patients/<id:patient_id>")
class PatientById(MethodView):
    @blp.response(200, PatientSchema)
    def get(self, patient_id):
        return operations.get_patient(current_actor(), patient_id, now=utc_now())

    @blp.arguments(PatientWriteSchema(partial=True))
    @blp.response(200, PatientSchema)
    def patch(self, data, patient_id):
        """Change some of a patient's details."""
        return operations.update_patient(current_actor(), patient_id, data, now=utc_now())


@blp.route("/patients/<id:patient_id>/consents")
class PatientConsents(MethodView):
    @blp.response(200, ConsentSchema(many=True))
    def get(self, patient_id):
        """Every consent ever recorded for the patient, revoked ones included."""
        return operations.get_patient(current_actor(), patient_id, now=utc_now()).consents

    @blp.arguments(ConsentSchema)
    @blp.response(201, ConsentSchema)
    def post(self, data, patient_id):
        """Record a consent (telehealth, RTM or SMS) given by the patient."""
        return operations.record_consent(
            current_actor(), patient_id, data["kind"], method=data["method"], note=data.get("note"),
            now=utc_now(),
        )


@blp.route("/consents/<id:consent_id>/revoke")
class ConsentRevoke(MethodView):
    @blp.arguments(ConsentRevokeSchema)
    @blp.response(200, ConsentSchema)
    def post(self, data, consent_id):
        """Revoke a consent; the record stays, stamped with who revoked it and when."""
        return operations.revoke_consent(current_actor(), consent_id, note=data.get("note"), now=utc_now())


@blp.route("/me")
class Me(MethodView):
    @blp.response(200, UserSchema)
    def get(self):
        """The user the token belongs to."""
        return current_actor().user


@blp.route("/tokens")
class Tokens(MethodView):
    @blp.response(200, TokenSchema(many=True))
    def get(self):
        """Your personal API tokens (never the secrets themselves)."""
        return operations.list_api_tokens(current_actor())

    @blp.arguments(TokenCreateSchema)
    @blp.response(201, NewTokenSchema)
    def post(self, data):
        """Create a token; the answer is the only time its secret is shown."""
        token, record = operations.create_api_token(
            current_actor(), data["name"], expires_in_days=data.get("expires_in_days"), now=utc_now()
        )
        return {**{name: getattr(record, name) for name in TokenSchema().fields}, "token": token}


@blp.route("/tokens/<id:token_id>")
class TokenById(MethodView):
    @blp.response(204)
    def delete(self, token_id):
        """Revoke one of your tokens."""
        operations.revoke_api_token(current_actor(), token_id, now=utc_now())
