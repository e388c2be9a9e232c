"""The error the paper broker answers with, in Alpaca's shape.

Alpaca answers a failed call with an HTTP status and a JSON body ``{"code": 40410000, "message":
"..."}``: the eight-digit code starts with the HTTP status. The book raises :class:`ApiError`; the
HTTP layer turns it into that body. Authentication failures are the one exception: Alpaca sends
``{"message": "unauthorized."}`` without a ``code`` (see ``server.py``).
"""

from __future__ import annotations

CODE_BAD_REQUEST = 40010000
CODE_FORBIDDEN = 40310000
CODE_NOT_FOUND = 40410000
CODE_UNPROCESSABLE = 42210000
CODE_RATE_LIMITED = 42910000

MSG_ORDER_NOT_FOUND = "order not found"
MSG_POSITION_NOT_FOUND = "position does not exist"
MSG_DUPLICATE_CLIENT_ORDER_ID = "client_order_id must be unique"


class ApiError(Exception):
    """A failure reported to the client: HTTP ``status`` plus Alpaca's ``code`` and ``message``.

    Raised by the book and the request handlers; never escapes the HTTP layer.
    """

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, object]:
        """The JSON body Alpaca sends for this error."""
        return {"code": self.code, "message": self.message}


def unprocessable(message: str) -> ApiError:
    """422 with code 42210000: the request is well-formed but the broker refuses it."""
    return ApiError(422, CODE_UNPROCESSABLE, message)


def forbidden(message: str) -> ApiError:
    """403 with code 40310000: insufficient buying power or quantity, shorting not allowed."""
    return ApiError(403, CODE_FORBIDDEN, message)


def not_found(message: str) -> ApiError:
    """404 with code 40410000."""
    return ApiError(404, CODE_NOT_FOUND, message)


def bad_request(message: str) -> ApiError:
    """400 with code 40010000: the body is not JSON or not an object."""
    return ApiError(400, CODE_BAD_REQUEST, message)
