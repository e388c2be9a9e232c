"""The error the paper broker answers with, in Alpaca's shape.

Alpaca answers a failed call with an HTTP status and a JSON body ``{"code": 40410000, "message":
"..."}``: the eight-digit code starts with the HTTP status, except for parameter errors, which
are 422 with code ``40010001`` (a missing or malformed field, a duplicate ``client_order_id``, a
non-UUID order id). Some refusals carry extra fields (403 ``insufficient buying power`` has
``buying_power`` and ``cost_basis``, ``insufficient qty available`` has ``available``,
``existing_qty``, ``held_for_orders`` and ``symbol``, the wash-trade refusal
``existing_order_id`` and ``reject_reason``); Alpaca's keys come sorted, so do ours. The book
raises :class:`ApiError`; the HTTP layer turns it into that body. Authentication failures are the
one exception: Alpaca sends ``{"message": "unauthorized."}`` without a ``code`` (see
``server.py``).
"""

from __future__ import annotations

CODE_BAD_REQUEST = 40010000
CODE_INVALID_PARAMETER = 40010001
CODE_FORBIDDEN = 40310000
CODE_NOT_FOUND = 40410000
CODE_UNPROCESSABLE = 42210000
CODE_RATE_LIMITED = 42910000

MSG_ORDER_NOT_FOUND = "order not found"
MSG_POSITION_NOT_FOUND = "position does not exist"
MSG_DUPLICATE_CLIENT_ORDER_ID = "client_order_id must be unique"
MSG_INVALID_ORDER_ID = "invalid order id"
MSG_INSUFFICIENT_BUYING_POWER = "insufficient buying power"
MSG_WASH_TRADE = "potential wash trade detected. use complex orders"


class ApiError(Exception):
    """A failure reported to the client: HTTP ``status`` plus Alpaca's ``code`` and ``message``,
    and any extra body ``fields`` (strings, as Alpaca sends them).

    Raised by the book and the request handlers; never escapes the HTTP layer.
    """

    def __init__(self, status: int, code: int, message: str, **fields: object) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def body(self) -> dict[str, object]:
        """The JSON body Alpaca sends for this error (keys sorted when there are extra fields)."""
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if not self.fields:
            return body
        body.update(self.fields)
        return dict(sorted(body.items()))


def invalid(message: str) -> ApiError:
    """422 with code 40010001: a parameter is missing, malformed or not allowed."""
    return ApiError(422, CODE_INVALID_PARAMETER, message)


def unprocessable(message: str) -> ApiError:
    """422 with code 42210000: the request is well-formed but a trading rule refuses it."""
    return ApiError(422, CODE_UNPROCESSABLE, message)


def forbidden(message: str, **fields: object) -> ApiError:
    """403 with code 40310000: a business refusal (buying power, held quantity, wash trade)."""
    return ApiError(403, CODE_FORBIDDEN, message, **fields)


def not_found(message: str) -> ApiError:
    """404 with code 40410000."""
    return ApiError(404, CODE_NOT_FOUND, message)


def bad_request(message: str) -> ApiError:
    """400 with code 40010000: the body is not JSON or not an object."""
    return ApiError(400, CODE_BAD_REQUEST, message)
