# Build: the Rust binary embeds htmx from npm (package-lock.json) and its own assets.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY Cargo.toml Cargo.lock build.rs schema.sql schema.postgres.sql ./
COPY src src
COPY assets assets
COPY fmus fmus
COPY benches benches
RUN cargo build --release --locked --bin fmu-gateway

# Run: a small Debian with the binary only; data lives on the mounted volume. The service
# runs as the unprivileged user `fmu`: the entry point only gives it the (root-owned) volume,
# then drops to it with no capabilities and no new privileges (deploy/entrypoint.sh).
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 fmu \
    && useradd --system --uid 10001 --gid fmu --home-dir /nonexistent --shell /usr/sbin/nologin fmu \
    && mkdir -p /data && chown fmu:fmu /data
COPY --from=build /src/target/release/fmu-gateway /usr/local/bin/fmu-gateway
COPY deploy/entrypoint.sh /usr/local/bin/fmu-gateway-entrypoint
ENV FMU_GATEWAY_LISTEN=0.0.0.0:8080 FMU_GATEWAY_DATA_DIR=/data FMU_GATEWAY_USER=fmu
EXPOSE 8080
ENTRYPOINT ["fmu-gateway-entrypoint"]
CMD ["serve"]
