# hashroll: `make demo` runs the example, `make test` runs every check.
SHELL := /bin/bash
HASHROLL_CACHE ?= $(HOME)/.cache/hashroll
export HASHROLL_CACHE
# build caches live outside the clone, so a fresh clone (CI included) reuses them
CARGO_TARGET_DIR ?= $(HASHROLL_CACHE)/target
export CARGO_TARGET_DIR
include hack/versions.env
PLANE_BIN := $(HASHROLL_CACHE)/control-plane/$(KUBERNETES_VERSION)/bin

.PHONY: docs node image argo-rollouts argocd flux csi-crds reloader-chart tools soak fuzz fuzz-smoke fuzz-tools all demo demo-safe bench control-plane build release certs fmt-check clippy hadolint lint unit e2e test versions

all: build

## demo: local control plane + hashroll + the blog post's example rollout; stops it all after
demo:
	@hack/demo.sh

## demo-safe: safe rollouts: waves, a bad change held after the first wave, the fix
demo-safe: control-plane
	@hack/demo-safe.sh

## bench: webhook throughput/latency, reload latency at scale, peak RSS; each next to a
## baseline measured in the same run (BENCH=webhook|hostile|reload|memory|scale|restart for one; BENCH_ARGS=--quick)
BENCH ?= all
bench: control-plane
	cargo bench --bench hashroll -- $(BENCH) $(BENCH_ARGS)

## control-plane: build etcd, kube-apiserver, controller-manager, scheduler, kubectl, kwok once
control-plane:
	@hack/build-control-plane.sh

build:
	cargo build --workspace --all-targets

## certs: a CA and a serving certificate for the webhook in webhook-certs/out/
certs:
	@webhook-certs/generate.sh

fmt-check:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

hadolint:
	@hack/hadolint.sh

lint: fmt-check clippy hadolint

## release: the binary the Dockerfile copies
release:
	cargo build --release --bin hashroll

unit:
	cargo test --workspace --lib --bins

## reference: write the generated reference pages (docs/src/reference/) from the code;
## `make unit` fails while one is stale
.PHONY: reference
reference:
	HASHROLL_BLESS=1 cargo test --lib cmd::reference

## fuzz: the admission fuzz target (any bytes, and reviews built around them) for
## FUZZ_SECONDS (cargo-fuzz on the nightly toolchain; no sanitizer: the crate forbids
## unsafe, and ASan cut the rate to 500 exec/s); fuzz-smoke: 45 s from the seeds
FUZZ_SECONDS ?= 600
FUZZ_CORPUS := $(HASHROLL_CACHE)/fuzz-corpus
fuzz-tools:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@rustup toolchain list | grep -q nightly || { echo "make fuzz needs the nightly toolchain (rustup toolchain install nightly)"; exit 1; }

fuzz: fuzz-tools
	mkdir -p $(FUZZ_CORPUS)
	cd fuzz && cargo +nightly fuzz run -s none admission $(FUZZ_CORPUS) seeds/admission -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1

# the smoke starts from the seeds (regression inputs included) in a fresh corpus: the
# cached one grows with every long run, and reading it back alone took minutes
fuzz-smoke: fuzz-tools
	@smoke=$$(mktemp -d) && trap 'rm -rf "$$smoke"' EXIT && \
	cd fuzz && cargo +nightly fuzz run -s none admission "$$smoke" seeds/admission -- -max_total_time=45 -print_final_stats=1

## node: kubelet and containerd from their Go modules, the pause and busybox images, and
## the Debian packages a real node runs with (runc, CNI plugins), once (hack/build-node.sh)
node:
	@hack/build-node.sh

## image: hashroll's runtime image as an OCI archive, from the release binary and the
## Dockerfile's final stage; prints the archive's path (hack/build-image.sh)
image: release
	@hack/build-image.sh

## argo-rollouts: the Argo Rollouts controller and CRDs for tests/e2e_argo.rs, built once
argo-rollouts:
	@hack/build-argo-rollouts.sh

## csi-crds: the Secrets Store CSI Driver's CRDs out of its Go module, for tests/e2e_csi*.rs
csi-crds:
	@hack/fetch-csi-crds.sh

## argocd: Argo CD's application-controller and repo-server (one binary) and its CRDs for
## tests/e2e_argocd.rs, built once (and Debian's redis-server installed when missing)
argocd:
	@hack/build-argocd.sh

## flux: Flux's kustomize-controller and its CRDs for tests/e2e_flux.rs, built once
flux:
	@hack/build-flux.sh

## reloader-chart: Stakater Reloader's Helm chart out of its Go module, for tests/e2e_reloader.rs
reloader-chart:
	@hack/fetch-reloader-chart.sh >/dev/null

## tools: helm and promtool from their Go modules, for the chart and alert-rule tests
tools:
	@hack/build-tools.sh

## soak: the chaos soak of tests/e2e_soak.rs at full size: 20 namespaces, 200 workloads,
## SOAK_WRITES random writes, 10 kills, 3 freezes, 2 apiserver restarts (make test runs a
## short variant); HASHROLL_SOAK_SEED=N replays a run
SOAK_WRITES ?= 1000
soak: control-plane
	HASHROLL_SOAK_NAMESPACES=20 HASHROLL_SOAK_WRITES=$(SOAK_WRITES) HASHROLL_SOAK_KILLS=10 \
	HASHROLL_SOAK_FREEZES=3 HASHROLL_SOAK_APISERVER_RESTARTS=2 \
	cargo test --test e2e_soak -- --nocapture

## e2e: every tests/e2e_*.rs against a real control plane (one per test binary), E2E_JOBS
## binaries at a time (default 3; E2E_JOBS=1 for one by one)
e2e: control-plane node argo-rollouts argocd flux csi-crds reloader-chart tools release image
	@hack/e2e.sh
	@hack/no-plane-left.sh

test: control-plane lint docs unit e2e release fuzz-smoke
	@echo "make test: all checks passed"

## docs: the documentation site (mdBook, pinned in hack/versions.env, installed once by
## hack/build-mdbook.sh) into $(HASHROLL_CACHE)/docs-site, then its check: every link and
## anchor, every include, every page in SUMMARY.md (tests/docs_site.rs)
DOCS_SITE ?= $(HASHROLL_CACHE)/docs-site
docs:
	@hack/build-mdbook.sh
	$$(hack/build-mdbook.sh path) build docs --dest-dir $(DOCS_SITE)
	@echo "docs: built into $(DOCS_SITE)/index.html"
	cargo test --test docs_site

versions: control-plane
	@$(PLANE_BIN)/kube-apiserver --version
	@$(PLANE_BIN)/etcd --version | head -1
	@$(PLANE_BIN)/kubectl version --client
	@$(PLANE_BIN)/kwok --version
