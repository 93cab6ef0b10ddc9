# Build: docker build -t astute-bridge .   (docker-compose.yml does this for you)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin astute-bridge

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/astute-bridge --create-home bridge
COPY --from=build /src/target/release/astute-bridge /usr/local/bin/astute-bridge
USER bridge
WORKDIR /var/lib/astute-bridge
# Exec form: the bridge is PID 1 and receives SIGTERM itself, so it stops cleanly.
ENTRYPOINT ["/usr/local/bin/astute-bridge"]
CMD ["serve"]
