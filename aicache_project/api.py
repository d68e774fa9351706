"""``POST /api/aicache/process/``: the reference text processor (``aicache.processor``) behind
``get_or_compute``. It lives in the project, not in the reusable app: the app has no text
processor of its own to expose."""

from __future__ import annotations

from django.core.cache import caches
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from aicache import processor
from aicache.monitoring.api.serializers import StrictCharField
from aicache.monitoring.api.throttles import ProcessThrottle
from aicache.monitoring.api.views import THROTTLED, MonitoringAPIView, responses

MAX_PROCESS_TEXT = 100_000
MAX_QUESTION = 2_000
MAX_OPTIONS = 10
CACHE_CONTROLS = ("default", "no-store", "refresh", "only-if-cached")


def _scalar_options(value: dict) -> dict:
    if len(value) > MAX_OPTIONS:
        raise serializers.ValidationError(f"At most {MAX_OPTIONS} options.")
    for key, item in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 64:
            raise serializers.ValidationError("Option names are 1-64 characters.")
        if not (
            item is None
            or isinstance(item, (bool, int, float))
            or (isinstance(item, str) and len(item) <= 200)
        ):
            raise serializers.ValidationError(
                f"Option {key!r} must be a number, a bool, null or a short string."
            )
        if isinstance(item, int) and not isinstance(item, bool) and abs(item) > 2**53:
            raise serializers.ValidationError(f"Option {key!r} is out of range.")
    return value


class ProcessRequest(serializers.Serializer):
    text = StrictCharField(max_length=MAX_PROCESS_TEXT, trim_whitespace=False)
    operation = serializers.ChoiceField(choices=processor.OPERATIONS)
    options = serializers.DictField(required=False, allow_null=True, validators=[_scalar_options])
    question = StrictCharField(required=False, allow_null=True, allow_blank=True, max_length=MAX_QUESTION)
    cache = serializers.ChoiceField(choices=CACHE_CONTROLS, default="default")

    def validate_text(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("Must contain some text.")
        return value

    def validate(self, attrs: dict) -> dict:
        if attrs["operation"] == "qa" and not (attrs.get("question") or "").strip():
            raise serializers.ValidationError({"question": ["qa needs a question."]})
        return attrs


class CacheMetaOut(serializers.Serializer):
    hit = serializers.BooleanField()
    source = serializers.ChoiceField(choices=("memory", "redis", "coalesced", "compute"))
    tier = serializers.CharField()
    text_length = serializers.IntegerField()
    cached_at = serializers.FloatField(allow_null=True)
    compression_used = serializers.BooleanField()


class ProcessOut(serializers.Serializer):
    result = serializers.DictField(
        allow_null=True, help_text="The processor's answer; null on an only-if-cached miss."
    )
    cache = CacheMetaOut(allow_null=True)


RESERVED = ("cache_hit", "cached_at", "tier", "text_length", "compression_used", "cache_source")


class ProcessView(MonitoringAPIView):
    """Authenticated users; throttled per user."""

    permission_classes = [IsAuthenticated]
    throttle_classes = [ProcessThrottle]

    @extend_schema(request=ProcessRequest, responses=responses(ProcessOut, THROTTLED))
    def post(self, request: Request) -> Response:
        """Run the reference text processor through ``get_or_compute`` (one model call per distinct
        request, across processes) and return its answer with the cache's metadata."""
        data = request.data if isinstance(request.data, dict) else {}
        serializer = ProcessRequest(data=request.data)
        unknown = sorted(set(data) - set(serializer.fields))
        if unknown:
            raise serializers.ValidationError({str(k)[:64]: ["Unknown field."] for k in unknown[:20]})
        serializer.is_valid(raise_exception=True)
        v = serializer.validated_data
        text, operation, options, question = v["text"], v["operation"], v.get("options"), v.get("question")
        try:
            answer = caches["ai"].get_or_compute(
                text,
                operation,
                lambda: processor.get_processor().process(text, operation, options, question),
                options,
                question,
                cache=v["cache"],
            )
        except (TypeError, ValueError) as exc:
            raise serializers.ValidationError({"non_field_errors": [str(exc)]}) from exc
        if answer is None:
            return Response(ProcessOut({"result": None, "cache": None}).data)
        meta = {
            "hit": bool(answer.get("cache_hit")),
            "source": answer.get("cache_source", "compute"),
            "tier": answer.get("tier", ""),
            "text_length": answer.get("text_length", len(text)),
            "cached_at": answer.get("cached_at"),
            "compression_used": bool(answer.get("compression_used")),
        }
        result = {k: val for k, val in answer.items() if k not in RESERVED}
        return Response(ProcessOut({"result": result, "cache": meta}).data)


process = ProcessView.as_view()
