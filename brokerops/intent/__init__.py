"""Signal store: the only code that talks to Firestore (or the embedded local store)."""
