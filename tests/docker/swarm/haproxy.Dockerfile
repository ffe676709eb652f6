# The stack's proxy for tests/docker/swarm.py: Debian 12's haproxy on the same bookworm-slim
# base as the vggserve image (no registry here). Laid out like the upstream haproxy image
# docker/stack.yaml names by default: config at /usr/local/etc/haproxy/haproxy.cfg, runs as an
# unprivileged user, `haproxy` on PATH.
FROM debian:bookworm-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && mkdir -p /usr/local/etc/haproxy

USER haproxy
EXPOSE 8080 8404
CMD ["haproxy", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
