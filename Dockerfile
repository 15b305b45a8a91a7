# Multi-stage build: static binaries on a distroless, non-root base.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/simworker ./cmd/simctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/simworker /out/simctl /usr/local/bin/
COPY deploy/fixtures /fixtures
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/simworker"]
CMD ["run"]
