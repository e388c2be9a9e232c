"""English formats: every timestamp the admin shows carries its seconds and its time zone
(docs/design.md section 7), e.g. ``2026-11-25 16:48:03 UTC``; dates read the same way."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
