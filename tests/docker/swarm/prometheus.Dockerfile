# Prometheus for tests/docker/swarm.py: Debian 12's prometheus package on the same
# bookworm-slim base (no registry here). Laid out like the upstream prom/prometheus image
# docker/stack.yaml names by default: the binary is the entrypoint, data in /prometheus owned
# by nobody, which it runs as. The web console's JavaScript libraries (libjs-*, 220 MB, most
# of it moment-timezone's data) and promtool are kept out with dpkg path-excludes, as the slim
# base keeps out documentation: the test only queries the HTTP API.
FROM debian:bookworm-slim

RUN printf 'path-exclude=%s\n' /usr/share/javascript/\* /usr/bin/promtool >/etc/dpkg/dpkg.cfg.d/excludes \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && mkdir -p /prometheus \
    && chown nobody:nogroup /prometheus

USER nobody
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
