"""The monitoring-centre receiver: verify frames, store them durably, show alerts,
export evidence anyone can re-verify offline.

- `ingest`: Receiver (verify + group-committed storage + answers), no HTTP;
- `server`: the HTTP server of `sotto receive` (POST /v1/frames, /v1/sms, GET /v1/health);
- `store`: the database tables; `audit`: the append-only access log;
- `alerts`: list, show, acknowledge, close, silent devices;
- `evidence`: export bundles and verify them offline; `purge`: retention.
"""
