# syntax=docker/dockerfile:1
# The `clinic` binary in a small image. Built with `postgres-tls` (libpq + OpenSSL from source),
# so sslmode=verify-full works (a remote PostgreSQL needs it, or an explicit sslmode=disable);
# see docs/decisions/0001-postgres-client-linking.md.
#   docker build -t clinic .
#   docker run -p 8080:8080 -v clinic-data:/var/lib/clinic clinic          # SQLite in the volume
#   docker run -e 'DATABASE_URL=postgres://…?sslmode=verify-full&sslrootcert=/run/secrets/db-ca.pem' \
#       -p 8080:8080 clinic                                                  # PostgreSQL

# Images are pinned to exact version tags, not digests: digests could not be fetched where this
# was written (no registry access). Bump the tags deliberately; docs/security.md, F16.
FROM rust:1.95.0-bookworm AS builder
# The full (not slim) image has gcc, perl and make: all that libpq, SQLite and OpenSSL need.
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p clinic-server --features postgres-tls \
    && install -D -m 0755 target/release/clinic /out/clinic

FROM debian:12.13-slim
# The binary links libpq, SQLite and OpenSSL statically and needs only libc. ca-certificates
# for TLS peers. No curl: `clinic healthcheck` is the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 clinic \
    && useradd --system --uid 10001 --gid clinic --home-dir /var/lib/clinic --shell /usr/sbin/nologin clinic \
    && install -d -o clinic -g clinic -m 0750 /var/lib/clinic
COPY --from=builder /out/clinic /usr/local/bin/clinic

# With no DATABASE_URL the database is SQLite at /var/lib/clinic/clinic.db.
ENV CLINIC_DATA_DIR=/var/lib/clinic \
    CLINIC_BIND=0.0.0.0:8080
VOLUME /var/lib/clinic
WORKDIR /var/lib/clinic
USER clinic:clinic
EXPOSE 8080

# GET /readyz on CLINIC_BIND (0.0.0.0 is checked on 127.0.0.1); exit 0 only on 200. /readyz
# waits up to 5 s for a database connection before answering 503; the check gives up after 8 s.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["clinic", "healthcheck"]

# `clinic` handles SIGTERM itself (graceful, up to 30 s). Other commands, on the same data:
#   docker run --rm -v clinic-data:/var/lib/clinic clinic token create --name me --scope admin
#   docker exec CONTAINER clinic backup /var/lib/clinic/backup.db   # beside a running server
ENTRYPOINT ["clinic"]
CMD ["serve"]
