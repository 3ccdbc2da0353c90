# syntax=docker/dockerfile:1
# Warden's one image: `warden serve` (engine), `warden admission serve` (webhook), `warden proxy`
# (sidecar) and `warden build` (init container) are all `node bin/warden.js <command>`.
#   docker build -t ghcr.io/warden-dev/warden:0.1.0 .
# OPA is pinned in tools.json; keep OPA_VERSION below equal to it (test/deploy-manifests.test.ts checks).

ARG OPA_VERSION=v1.22.3

# ---- OPA, built from the Go module proxy like bin/setup.js does (no downloaded binary) -------------
FROM golang:1.24-bookworm AS opa
ARG OPA_VERSION
ENV CGO_ENABLED=0 GOBIN=/out
RUN go install -trimpath -ldflags='-s -w' github.com/open-policy-agent/opa@${OPA_VERSION} \
 && /out/opa version

# ---- production node_modules (better-sqlite3 needs a compiler for its native addon) ----------------
FROM node:20-bookworm-slim AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# ---- runtime ---------------------------------------------------------------------------------------
FROM node:20-bookworm-slim
# git: `warden build` records the policy commit when policies/ is a Git checkout (else "unversioned").
# iptables: `warden init-net`, the injected interception init container (runs iptables-restore).
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates tini iptables \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 warden \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin warden
WORKDIR /app
ENV NODE_ENV=production \
    WARDEN_OPA=/usr/local/bin/opa
COPY --from=opa /out/opa /usr/local/bin/opa
COPY --from=deps /app/node_modules ./node_modules
# Sources run through tsx (no separate build step). policies/ is the default repository the
# build-bundles init container compiles; replace it in a derived image (COPY my-policies /app/policies).
COPY package.json package-lock.json tools.json tsconfig.json ./
COPY bin ./bin
COPY formats ./formats
COPY runtime ./runtime
COPY engine ./engine
COPY cli ./cli
COPY admission ./admission
COPY proxy-plugin ./proxy-plugin
COPY policies ./policies
# Numeric UID so Kubernetes can verify runAsNonRoot (deploy/ sets runAsUser 10001 as well).
USER 10001:10001
EXPOSE 8443 15001 15020
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/warden.js"]
CMD ["--help"]
