# The one windsock binary; docker-compose.yml runs it once per service.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin windsock

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/windsock /usr/local/bin/windsock
RUN useradd --system --home /var/lib/windsock windsock && mkdir -p /var/lib/windsock && chown windsock /var/lib/windsock
USER windsock
WORKDIR /var/lib/windsock
EXPOSE 8080
ENTRYPOINT ["windsock"]
CMD ["up"]
