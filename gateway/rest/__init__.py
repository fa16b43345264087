"""Azure Batch's REST API on Shoal: the gateway's HTTP port that Azure's SDKs and tools talk to.

Pure modules: `shared_key` (the signature), `odata` ($filter, $select, maxresults),
`conditions` (If-Match and friends), `errors` (Shoal's errors as Azure's), `wire/` (each
resource's JSON <-> protobuf). I/O: `backend` (the services, through the gateway's channels),
`http` and `listing` (request and response plumbing), `routes/` (the operations), `app` (the
server: request ids, authentication, errors).
"""
