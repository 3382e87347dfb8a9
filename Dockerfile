# The perfagent image, as Prometheus's are built: the static binaries that
# make docker builds into .build/<os>-<arch>/ are copied onto an empty
# base, with the build host's CA certificates (for https sources,
# Alertmanagers and webhooks). It needs nothing from a registry.
#   make docker                       # perfagent:<version> for this machine
#   docker run -p 8002:8002 -v /my/perfagent.yml:/etc/perfagent/perfagent.yml perfagent:<version>
# Kubernetes probes /-/healthy and /-/ready, so the image has no HEALTHCHECK.
ARG ARCH="amd64"
ARG OS="linux"
FROM scratch
ARG ARCH="amd64"
ARG OS="linux"
LABEL org.opencontainers.image.title="perfagent" \
      org.opencontainers.image.description="Performance agent for LLM inference fleets" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/optiinfra/perfagent"

COPY .build/${OS}-${ARCH}/perfagent /bin/perfagent
COPY .build/${OS}-${ARCH}/llmsim /bin/llmsim
COPY .build/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY examples/perfagent-remote.yml /etc/perfagent/perfagent.yml
# The storage directory (signal history and the workflow store), owned by
# the user the agent runs as.
COPY --chown=65534:65534 .build/storage/ /perfagent/

USER 65534:65534
EXPOSE 8002
VOLUME ["/perfagent"]
WORKDIR /perfagent
ENTRYPOINT ["/bin/perfagent"]
CMD ["--config.file=/etc/perfagent/perfagent.yml", "--storage.path=/perfagent"]
