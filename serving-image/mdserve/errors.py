"""Typed errors of the data plane; each one knows its HTTP status and a bounded `kind` label."""

from __future__ import annotations


class MdserveError(Exception):
    """Base of every error the server turns into an HTTP response.

    `kind` is a short fixed token used as a metric label, so it must never carry user input.
    """

    status: int = 500
    kind: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(MdserveError):
    """The request is malformed in a way the client can fix."""

    status = 400
    kind = "bad_request"


class BadJson(BadRequest):
    kind = "bad_json"


class MissingField(BadRequest):
    kind = "missing_field"


class WrongShape(BadRequest):
    kind = "wrong_shape"


class WrongDatatype(BadRequest):
    kind = "wrong_dtype"


class UnknownOutput(BadRequest):
    kind = "unknown_output"


class ModelRejectedInput(BadRequest):
    """The runtime raised on input that passed our own checks (e.g. a value the model cannot use)."""

    kind = "model_rejected_input"


class NotFound(MdserveError):
    status = 404
    kind = "not_found"


class UnknownModel(NotFound):
    kind = "unknown_model"


class UnknownRequestId(NotFound):
    kind = "unknown_request_id"


class MethodNotAllowed(MdserveError):
    status = 405
    kind = "method_not_allowed"


class PayloadTooLarge(MdserveError):
    status = 413
    kind = "too_large"


class UnsupportedMediaType(MdserveError):
    status = 415
    kind = "unsupported_media_type"


class NotReady(MdserveError):
    status = 503
    kind = "not_ready"


class ModelError(MdserveError):
    """The model failed while predicting on valid input: a server-side fault."""

    status = 500
    kind = "model_error"


class ModelLoadError(Exception):
    """The model cannot be fetched, verified or loaded; the server must not become ready."""


#: Every `kind` the server can emit, so metrics can be pre-declared and stay bounded.
ERROR_KINDS: tuple[str, ...] = (
    "internal",
    "bad_request",
    "bad_json",
    "missing_field",
    "wrong_shape",
    "wrong_dtype",
    "unknown_output",
    "model_rejected_input",
    "not_found",
    "unknown_model",
    "unknown_request_id",
    "method_not_allowed",
    "too_large",
    "unsupported_media_type",
    "not_ready",
    "model_error",
)


def _statuses(cls: type[MdserveError]) -> set[int]:
    return {cls.status}.union(*(_statuses(sub) for sub in cls.__subclasses__()))


#: Every HTTP status an error of the server can carry (its subclasses included), for pre-declared metrics.
ERROR_STATUSES: tuple[int, ...] = tuple(sorted(_statuses(MdserveError)))
