"""Storage backends of the stager: `local` (a directory, served by the stager's own HTTP
server) and `s3` (aiobotocore), behind one interface (base.Backend)."""
