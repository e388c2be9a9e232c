"""The account's ledger (docs/design.md section 18): Alpaca's account activities, read
incrementally per account and stored once each in an append-only, hash-chained table."""
