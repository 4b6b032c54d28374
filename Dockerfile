# syntax=docker/dockerfile:1
# callback-host with the example plugins.
#   docker build -t callback-host .
#   docker run --read-only -p 10006:10006 -e CALLBACK_HOST_BASIC_PASSWORD=... \
#     -v callback-host-cache:/cache -v callback-host-data:/data callback-host
# Your own plugins: mount a directory over /opt/callback-host/plugins (owned by root or uid 10001,
# not writable by others), or build FROM this image and COPY them there.
#
# The runtime stage alone, from a binary and plugins built outside (scripts/run.sh or
# scripts/build-plugins.sh and cargo build --release), without the build stage's base images:
#   mkdir -p ctx/out/plugins ctx/deploy && cp target/release/callback-host ctx/out/ \
#     && cp plugins/*.wasm ctx/out/plugins/ && cp deploy/container.toml ctx/deploy/
#   docker build -f Dockerfile --build-arg ARTIFACTS=prebuilt -t callback-host ctx
# (ctx/ is ignored by git. podman: podman build --isolation=chroot --format docker ...; with runc,
# podman run needs --ulimit nofile=1024:1024 --ulimit nproc=1000:1000. BASE=<image> picks another
# Debian bookworm base, e.g. one made offline with mmdebstrap and `podman import`: see
# docs/production.md, "A container".)
ARG BASE=debian:bookworm-slim
ARG ARTIFACTS=from-source

# ---- build: the host and the example plugins, with the same scripts as a fresh machine ----
FROM rust:1.95-slim-bookworm AS build
COPY --from=node:20-bookworm-slim /usr/local/bin/node /usr/local/bin/node
COPY --from=node:20-bookworm-slim /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 python3-venv clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The pinned toolchains first (in parallel): this layer stays cached while only sources change.
COPY scripts/install-toolchains.sh scripts/
COPY plugins/guard-js/package.json plugins/guard-js/package-lock.json plugins/guard-js/
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    bash scripts/install-toolchains.sh plugins
COPY . .
# The host's build and the plugins' builds side by side, as scripts/run.sh does.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    { cargo build --release --locked -p callback-host & host=$!; \
      bash scripts/build-plugins.sh && wait $host; } \
 && mkdir -p /out/plugins \
 && cp target/release/callback-host /out/ \
 && cp plugins/*.wasm /out/plugins/

# The artifacts, from the build stage (the default) or from the build context's out/ (prebuilt):
# the runtime stage copies from whichever ARTIFACTS names; the other is never built.
FROM scratch AS from-source
COPY --from=build /out/ /

FROM scratch AS prebuilt
COPY out/ /

FROM ${ARTIFACTS} AS artifacts

# ---- runtime: the binary, the plugins, a config; non-root, read-only root filesystem ----
FROM ${BASE} AS runtime
RUN useradd --system --uid 10001 --user-group --home-dir /nonexistent --shell /usr/sbin/nologin callback-host \
 && mkdir -p /cache /data \
 && chown 10001:10001 /cache /data \
 && chmod 700 /cache /data
COPY --from=artifacts /callback-host /usr/local/bin/callback-host
COPY --from=artifacts /plugins/ /opt/callback-host/plugins/
COPY deploy/container.toml /etc/callback-host/callback-host.toml
USER 10001:10001
# The compile cache (a subdirectory the host creates private) and the embedded stores are the
# only writes: both on volumes, so the root filesystem can be read-only.
ENV CALLBACK_HOST_CONFIG=/etc/callback-host/callback-host.toml \
    CALLBACK_HOST_PLUGINS=/opt/callback-host/plugins \
    CALLBACK_HOST_CACHE_DIR=/cache/compiled \
    CALLBACK_HOST_LOG_JSON=true
WORKDIR /data
VOLUME ["/cache", "/data"]
EXPOSE 10006
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD ["callback-host", "probe"]
ENTRYPOINT ["callback-host"]
CMD ["serve"]
