"""The web dashboard the gateway serves on its own HTTP port: pools with a node map, jobs
with live progress, a task list with filters and paging, a task's page with its attempts,
why it waits, and its log as it is written.

Behind the account key: a login page takes the key, and a session cookie (HttpOnly,
SameSite=Strict) stands for it afterwards; the key stays in the gateway's memory. Every data
call goes through the gateway's own gRPC API with that key, the path every client takes, so
authentication and per-account scoping are decided in one place. The pages are static HTML
and vanilla JavaScript over a small JSON API; live parts are Server-Sent Events.
"""
