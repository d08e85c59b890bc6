"""Worker hosts on other machines (issue 18): enrolment and signed messages.

The plan, of which this package holds the first layer:

- **One writer for the catalog.** Remote workers never open `catalog.db` (SQLite WAL
  works only between processes on one host). They take jobs from a compute queue on
  the broker and send results back on an ingest queue that only the library's owner
  consumes; the owner writes them idempotently, keyed by (job, attempt, token).
- **Every message is signed** (`engine.remote.signing`): HMAC-SHA256 over the canonical
  JSON of an envelope that names its key, its kind, an expiry, a nonce and the job's
  token. Results are signed with the worker's own key, so `workers remove NAME`
  revokes exactly that worker; the owner rejects forged, replayed, expired, malformed
  and revoked messages and logs why. Nothing from the network is unpickled.
- **Enrolment is explicit** (`engine.remote.enrol`): `shoebox workers add NAME` makes a
  key and prints one line, the worker's token; the owner keeps the keys in its
  catalog (`workers`, migration m008).
"""
