# sm-entry: the one entry point for building, testing and measuring.
#   make demo    run the example training job through the built binary
#   make demo-serve  serve the trained example model: /ping 503 -> 200, an invocation
#   make test    build, then run the whole test suite (what CI runs)
#   make build   dist/sm-entry (static) and dist/sm-entry-dynamic
#   make bench   start-up, memory and size figures against baselines
#   make lint    ruff + mypy --strict
SHELL := /bin/bash
.DEFAULT_GOAL := build

# Debian's python3: the pyenv one's libraries carry RUNPATH, which staticx
# refuses ("Unsupported PyInstaller input", staticx issue 188).
BUILD_PYTHON ?= /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
STATICX_VERSION := 0.14.2
STATICX_SHA256 := bf7d5d35d5777a72b2d4c408eb25f9c61049b28b94a388a012122dba00fffa93
STATICX_DIR := build/staticx
# Debian packages the build needs, and those the tests and benchmarks add;
# installed when missing (as root), so `make test` works on a fresh machine.
BUILD_PACKAGES := python3-venv python3-dev gcc libc6-dev patch patchelf binutils scons
TEST_PACKAGES := busybox-static podman runc tini hyperfine util-linux iproute2 procps \
	openmpi-bin openssh-client openssh-server curl openjdk-17-jre-headless \
	docker.io docker-compose debootstrap
BENCH_PACKAGES := wrk nginx-light
SOURCES := $(shell find supervisor -name '*.py') build.spec pyproject.toml

.PHONY: build test test-fast demo demo-serve bench lint mutation build-deps test-deps bench-deps apt-install clean

build-deps:
	@$(MAKE) -s --no-print-directory apt-install PACKAGES="$(BUILD_PACKAGES)"

test-deps:
	@$(MAKE) -s --no-print-directory apt-install PACKAGES="$(TEST_PACKAGES)"

apt-install:
	@missing=$$(for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "install as root: apt-get install $$missing" >&2; exit 1; fi; \
		echo "installing: $$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null \
		|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; }; \
	fi

$(VENV)/.installed: pyproject.toml | build-deps
	$(BUILD_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# What real jobs run, for the tests that run one (tests/binary/test_torch_job.py):
# torch's CPU build (the machines here hold its wheel).
TORCH_VERSION := 2.13.0
$(VENV)/.torch: $(VENV)/.installed
	$(PY) -m pip install -q torch==$(TORCH_VERSION)
	touch $@

# The SageMaker PyTorch inference toolkit (its `serve`, TorchServe behind it) in a venv of its
# own: its boto3 wants another botocore than ours (tests/binary/test_torchserve.py).
TOOLKIT_VENV := build/venv-pytorch-inference
$(TOOLKIT_VENV)/.installed: tests/toolkit/requirements-pytorch-inference.txt | build-deps
	rm -rf $(TOOLKIT_VENV) && $(BUILD_PYTHON) -m venv $(TOOLKIT_VENV)
	$(TOOLKIT_VENV)/bin/python -m pip install -q --upgrade pip
	$(TOOLKIT_VENV)/bin/python -m pip install -q -r tests/toolkit/requirements-pytorch-inference.txt
	touch $@

# The SageMaker Python SDK v2 for its local mode (tests/binary/test_sdk_local.py), in a venv of
# its own: its boto3, pandas and numpy pins are not ours.
SDK_VENV := build/venv-sagemaker-sdk
$(SDK_VENV)/.installed: tests/sdk_local/requirements.txt | build-deps
	rm -rf $(SDK_VENV) && $(BUILD_PYTHON) -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/python -m pip install -q --upgrade pip
	$(SDK_VENV)/bin/python -m pip install -q -r tests/sdk_local/requirements.txt
	touch $@

# The SageMaker training toolkit and the PyTorch containers' framework toolkit, pinned, for the
# launch parity test (tests/binary/test_toolkit_launch_parity.py runs tests/toolkit/launch/probe.py).
TRAINING_TOOLKIT_VENV := build/venv-sagemaker-training
$(TRAINING_TOOLKIT_VENV)/.installed: tests/toolkit/launch/requirements.txt | build-deps
	rm -rf $(TRAINING_TOOLKIT_VENV) && $(BUILD_PYTHON) -m venv $(TRAINING_TOOLKIT_VENV)
	$(TRAINING_TOOLKIT_VENV)/bin/python -m pip install -q --upgrade pip
	$(TRAINING_TOOLKIT_VENV)/bin/python -m pip install -q --no-deps -r tests/toolkit/launch/requirements.txt
	touch $@

# staticx from its pinned sdist, with our patch to its bootloader. Built
# without pip's build isolation: under it, the scons that builds the bootloader
# fails to import the standard library here.
$(STATICX_DIR)/.installed: build-support/staticx-bootloader.patch $(VENV)/.installed
	rm -rf $(STATICX_DIR) && mkdir -p $(STATICX_DIR)
	$(PY) -m pip download -q --no-binary :all: --no-deps staticx==$(STATICX_VERSION) -d $(STATICX_DIR)
	echo "$(STATICX_SHA256)  $(STATICX_DIR)/staticx-$(STATICX_VERSION).tar.gz" | sha256sum -c --quiet
	tar -xzf $(STATICX_DIR)/staticx-$(STATICX_VERSION).tar.gz -C $(STATICX_DIR)
	patch -s -p1 -d $(STATICX_DIR)/staticx-$(STATICX_VERSION) < build-support/staticx-bootloader.patch
	$(PY) -m pip install -q --no-build-isolation $(STATICX_DIR)/staticx-$(STATICX_VERSION)
	touch $@

# Both binaries end with build.spec's S3 bundle (OpenSSL for the S3 download, read
# only then): appended after the bootloaders' archives, so never unpacked at start.
# staticx takes the program without it (it would unpack it at every start).
S3_BUNDLE := build/generated/s3-bundle.zip
BARE := build/bare/sm-entry-dynamic
dist/sm-entry-dynamic: $(SOURCES) $(VENV)/.installed
	$(VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN \
		--distpath build/bare --workpath build/pyinstaller build.spec
	mkdir -p dist && cat $(BARE) $(S3_BUNDLE) > $@.tmp
	chmod 0755 $@.tmp && mv $@.tmp $@

# staticx writes 0700; an image with a non-root USER must be able to run it.
dist/sm-entry: dist/sm-entry-dynamic $(STATICX_DIR)/.installed
	$(VENV)/bin/staticx --no-compress $(BARE) $@.tmp
	cat $(S3_BUNDLE) >> $@.tmp
	chmod 0755 $@.tmp && mv $@.tmp $@

build: dist/sm-entry

test: build test-deps $(VENV)/.torch $(TOOLKIT_VENV)/.installed $(TRAINING_TOOLKIT_VENV)/.installed \
		$(SDK_VENV)/.installed
	$(PY) -m pytest -q tests

# The source-level tests only (no build): the [static] variants and the binary
# tests need `make build`, so they are left out rather than run on a stale binary.
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not binary" tests/unit tests/integration

demo: build
	bash examples/demo.sh dist/sm-entry

demo-serve: build test-deps
	bash examples/demo-serve.sh dist/sm-entry $(VENV)/bin/gunicorn

bench-deps:
	@$(MAKE) -s --no-print-directory apt-install PACKAGES="$(BENCH_PACKAGES)"

bench: build test-deps bench-deps
	$(PY) bench/run.py --binary dist/sm-entry --dynamic dist/sm-entry-dynamic

# Mutation testing of the modules whose bugs cost users most (tests/mutation/run.py);
# not part of `make test`: about an hour on 2 cores. MODULES=process,framing runs a
# few; RESUME=1 keeps the last results and tests again only what survived.
$(VENV)/.mutation: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev,mutation]'
	touch $@

mutation: $(VENV)/.mutation
	$(PY) tests/mutation/run.py $(if $(MODULES),--modules $(MODULES)) $(if $(RESUME),--resume)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check supervisor tests bench
	$(VENV)/bin/mypy --strict supervisor

clean:
	rm -rf build dist $(VENV) *.egg-info
