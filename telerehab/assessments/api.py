"""/api/v1: assessment protocols (read), results (create, list, correct, withdraw, history) and trends."""

from flask.views import MethodView
from marshmallow import RAISE

from telerehab.api import current_actor, make_blueprint
from telerehab.assessments import operations
from telerehab.assessments.protocols import all_protocols, get_protocol
from telerehab.assessments.schemas import (
    CorrectionSchema,
    ProtocolSchema,
    ProtocolSummarySchema,
    ResultListArgsSchema,
    ResultSchema,
    ResultWriteSchema,
    TrendSchema,
    WithdrawalSchema,
)
from telerehab.db_types import utc_now

blp = make_blueprint("assessments_api", __name__, "Assessment protocols, results and trends")


def _summary(protocol: dict) -> dict:
    return {**protocol, "video_available": protocol["variants"]["video"].get("available", True)}


@blp.route("/protocols")
class Protocols(MethodView):
    @blp.response(200, ProtocolSummarySchema(many=True))
    def get(self):
        """Every assessment and PROM protocol, with its version and whether it has a video variant."""
        return [_summary(p) for p in sorted(all_protocols().values(), key=lambda p: p["id"])]


@blp.route("/protocols/<protocol_id>")
class ProtocolDocument(MethodView):
    @blp.response(200, ProtocolSchema)
    def get(self, protocol_id):
        """One protocol document: variants, camera set-up, scoring, reliability, MDC, MCID, norms, sources."""
        return get_protocol(protocol_id)


@blp.route("/patients/<id:patient_id>/assessments")
class PatientResults(MethodView):
    @blp.arguments(ResultListArgsSchema, location="query", unknown=RAISE)
    @blp.response(200, ResultSchema(many=True))
    def get(self, args, patient_id):
        """The patient's results in force, newest first (optionally of one protocol)."""
        return operations.list_results(current_actor(), patient_id, protocol_id=args.get("protocol_id"),
                                       now=utc_now())

    @blp.arguments(ResultWriteSchema)
    @blp.response(201, ResultSchema)
    def post(self, data, patient_id):
        """Record a result: scored by the protocol, kept with its raw inputs, protocol version and variant."""
        return operations.record_result(current_actor(), patient_id, data, now=utc_now())


@blp.route("/assessment-results/<id:result_id>/corrections")
class ResultCorrections(MethodView):
    @blp.arguments(CorrectionSchema)
    @blp.response(201, ResultSchema)
    def post(self, data, result_id):
        """Correct a result in force: a new result is scored from the corrected inputs and the original
        is kept, superseded by it. A result already corrected or withdrawn is refused (422, `result`)."""
        return operations.correct_result(current_actor(), result_id, data, now=utc_now())


@blp.route("/assessment-results/<id:result_id>/withdrawal")
class ResultWithdrawal(MethodView):
    @blp.arguments(WithdrawalSchema)
    @blp.response(200, ResultSchema)
    def post(self, data, result_id):
        """Withdraw a result entered in error: it leaves lists and trends and stays in its history."""
        return operations.withdraw_result(current_actor(), result_id, data, now=utc_now())


@blp.route("/assessment-results/<id:result_id>/history")
class ResultHistory(MethodView):
    @blp.response(200, ResultSchema(many=True))
    def get(self, result_id):
        """The result's chain of corrections, first entered to latest, superseded and withdrawn ones included."""
        return operations.result_history(current_actor(), result_id, now=utc_now())


@blp.route("/patients/<id:patient_id>/assessments/<protocol_id>/trend")
class PatientTrend(MethodView):
    @blp.response(200, TrendSchema)
    def get(self, patient_id, protocol_id):
        """The measure's results per series, each against its baseline and the one before (MDC, MCID,
        comparability of variants) and the norms."""
        view = operations.trend(current_actor(), patient_id, protocol_id, now=utc_now())
        protocol = view.protocol
        return {
            "patient_id": view.patient.id, "protocol_id": protocol["id"], "protocol_version": protocol["version"],
            "units": protocol["units"], "direction": protocol["direction"],
            "comparability": protocol["comparability"]["status"],
            "series": [{
                "key": s.key, "label": s.label, "not_comparable_steps": s.warnings,
                "points": [{
                    "result_id": reading.point.result_id, "recorded_at": reading.point.recorded_at,
                    "value": reading.point.value, "variant": reading.point.variant,
                    "since_baseline": reading.since_baseline, "since_last": reading.since_last, "norm": norm,
                } for reading, norm in zip(s.readings, s.norms, strict=True)],
            } for s in view.series],
        }
