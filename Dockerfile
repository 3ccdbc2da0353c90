# syntax=docker/dockerfile:1
# Warden's images, one Dockerfile with targets:
#   docker build --target sidecar       -t ghcr.io/warden-dev/warden-sidecar:0.1.0 .
#   docker build --target control-plane -t ghcr.io/warden-dev/warden:0.1.0 .
# sidecar: `warden proxy` / `warden ext-authz` only — the runtime and the proxy plugin, compiled, and
#   the npm packages they import; no OPA, no git, no compiler, no engine (test/images.test.ts checks
#   the copied folders and the package list against the sidecar's import graph).
# control-plane: `warden serve` (engine), `warden admission serve` (webhook), `warden build`, `warden push`.
# Both run compiled code (dist/, bin/build.js); tsx is not in either.
# OPA is pinned in tools.json; keep OPA_VERSION below equal to it (test/images.test.ts checks).

ARG OPA_VERSION=v1.22.3
# The sidecar's npm packages: exactly those its import graph reaches (test/images.test.ts checks).
ARG SIDECAR_PACKAGES="@peculiar/asn1-csr @peculiar/asn1-rsa @peculiar/asn1-schema @peculiar/asn1-x509 ajv ajv-formats commander graphql jose pino prom-client tar undici yaml"

# ---- OPA, built from the Go module proxy like bin/setup.js does (no downloaded binary) -------------
FROM golang:1.24-bookworm AS opa
ARG OPA_VERSION
ENV CGO_ENABLED=0 GOBIN=/out
RUN go install -trimpath -ldflags='-s -w' github.com/open-policy-agent/opa@${OPA_VERSION} \
 && /out/opa version

# ---- dist/: the TypeScript sources compiled (dev dependencies only here) ---------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY bin ./bin
COPY formats ./formats
COPY runtime ./runtime
COPY engine ./engine
COPY cli ./cli
COPY admission ./admission
COPY proxy-plugin ./proxy-plugin
RUN node bin/build.js --force

# ---- production node_modules of the control plane (better-sqlite3 needs a compiler) ----------------
FROM node:20-bookworm-slim AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# ---- node_modules of the sidecar: only SIDECAR_PACKAGES, at the lockfile's versions ----------------
FROM node:20-bookworm-slim AS sidecar-deps
ARG SIDECAR_PACKAGES
WORKDIR /app
COPY package.json package-lock.json ./
RUN node -e 'const fs = require("fs"); const p = JSON.parse(fs.readFileSync("package.json", "utf8")); const keep = process.argv.slice(1); p.dependencies = Object.fromEntries(Object.entries(p.dependencies).filter(([n]) => keep.includes(n))); delete p.devDependencies; fs.writeFileSync("package.json", JSON.stringify(p));' ${SIDECAR_PACKAGES} \
 && npm install --omit=dev --ignore-scripts --no-audit --no-fund

# ---- the slim sidecar -------------------------------------------------------------------------------
FROM node:20-bookworm-slim AS sidecar
# iptables: `warden init-net`, the injected interception init container, runs from this image (iptables-restore).
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 warden \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin warden
WORKDIR /app
ENV NODE_ENV=production
COPY --from=sidecar-deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin/warden.js ./bin/warden.js
COPY --from=build /app/dist/cli/main.js /app/dist/cli/program.js /app/dist/cli/user-facing.js ./dist/cli/
# proxy / ext-authz start from this one-file bundle (bin/build.js); the per-file dist/ serves init-net and --help.
COPY --from=build /app/dist/sidecar.js ./dist/sidecar.js
COPY --from=build /app/dist/formats ./dist/formats
COPY --from=build /app/dist/runtime ./dist/runtime
COPY --from=build /app/dist/proxy-plugin ./dist/proxy-plugin
USER 10001:10001
EXPOSE 15001 15020
# node is PID 1: warden proxy handles SIGTERM itself (drains, ships its decision log, exits).
ENTRYPOINT ["node", "bin/warden.js"]
CMD ["proxy", "--help"]

# ---- the control plane: engine, webhook, build, push ---------------------------------------------------
FROM node:20-bookworm-slim AS control-plane
# git: `warden build` records the policy commit and its generation when policies/ is a Git checkout.
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
COPY package.json tools.json ./
COPY bin/warden.js ./bin/warden.js
COPY --from=build /app/dist ./dist
# policies/ is the example repository `warden build` compiles by default; CI builds your own.
COPY policies ./policies
# Numeric UID so Kubernetes can verify runAsNonRoot (deploy/ sets runAsUser 10001 as well).
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/warden.js"]
CMD ["--help"]
