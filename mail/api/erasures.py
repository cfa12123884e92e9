"""/api/v1/erasures: erase one person's address and the mail sent to it from the team's data
(scope `erasures:manage`; reading messages is not enough). The work is done by the housekeeping
command (mail/erasure.py); the answer is the job, and GET on it says when it is done."""

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import erasure
from ..models import MAX_ADDRESS_LENGTH, Erasure, Scope
from . import schema
from .fields import shortened
from .suppressions import plain_address


class ErasureSerializer(serializers.ModelSerializer):
    """The job as a client sees it: never the address (the team knows it; the row forgets it)."""

    class Meta:
        model = Erasure
        fields = ["id", "status", "erase_suppression", "messages_erased", "suppression_erased", "requested_at", "finished_at"]


class ErasureCreateSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=MAX_ADDRESS_LENGTH, help_text="The person's bare address.")
    erase_suppression = serializers.BooleanField(
        default=False,
        help_text="Also take the address off the suppression list, which is what keeps the team from mailing it again.",
    )

    def validate_email(self, value: str) -> str:
        return plain_address(value)

    def validate(self, attrs):
        unknown = [name for name in self.initial_data if name not in self.fields]
        if unknown:
            raise serializers.ValidationError({shortened(name): ["Not a field of an erasure."] for name in unknown[:10]})
        return attrs


class ErasureCollectionView(APIView):
    required_scopes = {"POST": Scope.ERASURES_MANAGE}

    @extend_schema(
        operation_id="request_erasure",
        summary="Erase a person's address and mail",
        description=(
            "Removes the address, and the subject, tags and metadata of mail sent to or from it, from the team's "
            "messages, their events, dead letters, stored bodies and archived rejected requests; mail to it not yet "
            "taken by a worker is canceled first, mail already on its way is erased once it is done. 202 with the job; "
            "GET it until its status is `done`. Scope `erasures:manage`."
        ),
        request=ErasureCreateSerializer,
        responses={202: ErasureSerializer, **schema.COMMON_ERRORS, 403: schema.FORBIDDEN, 415: schema.error("Not JSON.")},
    )
    def post(self, request):
        serializer = ErasureCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = erasure.request(
            request.auth.profile.team_id,
            serializer.validated_data["email"],
            serializer.validated_data["erase_suppression"],
            request.auth.prefix,
        )
        location = reverse("erasure-detail", kwargs={"erasure_id": job.id})
        return Response(ErasureSerializer(job).data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class ErasureDetailView(APIView):
    required_scopes = {"GET": Scope.ERASURES_MANAGE}

    @extend_schema(
        operation_id="get_erasure",
        summary="An erasure job",
        responses={
            200: ErasureSerializer,
            401: schema.COMMON_ERRORS[401],
            403: schema.FORBIDDEN,
            404: schema.error("No erasure of this team has that id."),
        },
    )
    def get(self, request, erasure_id):
        job = Erasure.objects.filter(pk=erasure_id, team_id=request.auth.profile.team_id).first()
        if job is None:
            raise Http404
        return Response(ErasureSerializer(job).data)
