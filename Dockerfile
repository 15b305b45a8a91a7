# Multi-stage build: static binaries on a small, non-root base image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/simworker ./cmd/simctl

# distroless/static: no shell, no package manager; uid 65532 (nonroot).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/simworker /out/simctl /usr/local/bin/
COPY deploy/fixtures /fixtures
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s CMD ["/usr/local/bin/simworker", "probe"]
ENTRYPOINT ["/usr/local/bin/simworker"]
CMD ["run"]
