# vggserve image: build on Debian 12 with the -dev packages, run on bookworm-slim with only the
# runtime libraries. See docker/README.md.
#
#   docker build -t vggserve .
#   docker run --rm -p 127.0.0.1:8080:8080 vggserve                        generated weights
#   docker run --rm -p 127.0.0.1:8080:8080 -p 127.0.0.1:8001:8001 vggserve  and gRPC (KServe v2)
#   docker run --rm -p 127.0.0.1:8080:8080 -v "$PWD/models:/models:ro" vggserve   real weights
#
# /models (docker/entrypoint.sh decides): a model repository (VGGSERVE_MODEL_REPOSITORY=/models)
# when it holds NAME/VERSION/model.safetensors folders, or with VGGSERVE_MODEL_CONTROL_MODE=
# explicit; else /models/vgg16.safetensors when mounted (or VGGSERVE_WEIGHTS=PATH); else the
# service generates deterministic test weights and says so. Every setting is a VGGSERVE_*
# environment variable (docs/configuration.md).

# ---------------------------------------------------------------- build
FROM debian:bookworm AS build

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libstb-dev libdnnl-dev libturbojpeg0-dev libwebp-dev zlib1g-dev \
       libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY CMakeLists.txt ./
COPY model model
COPY api api
COPY config config
COPY server server
COPY cli cli
COPY proto proto
COPY util util
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DVGGSERVE_BUILD_TESTS=OFF -DVGGSERVE_BUILD_BENCH=OFF \
    && cmake --build build -j "$(nproc)" --target vggserve \
    && strip build/vggserve

# ---------------------------------------------------------------- runtime
FROM debian:bookworm-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       libdnnl2 libmicrohttpd12 libjansson4 libgomp1 libturbojpeg0 libwebp7 zlib1g \
       libgrpc++1.51 libprotobuf32 \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin vggserve \
    && mkdir /models

COPY --from=build /src/build/vggserve /usr/local/bin/vggserve
COPY docker/entrypoint.sh /usr/local/bin/vggserve-entrypoint

# Listen on all interfaces inside the container; the rest are the service's defaults. The
# admin listener (8081: /healthz, /readyz, /metrics, its own connection budget) is what the
# health check, compose's Prometheus, the Swarm proxy and the Kubernetes probes use. 8001 is
# KServe v2 over gRPC (Triton's port), with grpc.health.v1 for gRPC load balancers and probes.
ENV VGGSERVE_HOST=0.0.0.0 \
    VGGSERVE_PORT=8080 \
    VGGSERVE_ADMIN_PORT=8081 \
    VGGSERVE_GRPC_PORT=8001

# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 8080 8081 8001

# Loading and warming up VGG16 takes about 10 s on 2 cores; /readyz is 200 only when ready.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["vggserve", "healthcheck"]

ENTRYPOINT ["vggserve-entrypoint"]
CMD ["serve"]
