# The one place where the project's commands are spelled out; README and CI call these.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The OpenID Connect provider the sign-in tests start: panva's oidc-provider from npm.
OIDC       := tests/support/oidc
OIDC_STAMP := $(OIDC)/node_modules/.installed
# Deque's axe-core from npm, which the browser tests inject to check the console's accessibility.
AXE        := tests/support/axe
AXE_STAMP  := $(AXE)/node_modules/.installed

.PHONY: demo test lint format pytest serve sysdeps clean

# Run the product on its embedded defaults: SQLite, sample users, a simulated PBX.
# `make demo DEMO_ARGS=--with-sip` also starts Kamailio (when installed) for the SIP connectors.
demo: $(STAMP)
	$(BIN)/presencebridge demo $(DEMO_ARGS)

# Everything CI checks: lint, types, and the whole test suite on real databases.
test: sysdeps $(STAMP) lint pytest

pytest: $(STAMP) $(OIDC_STAMP) $(AXE_STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

serve: $(STAMP)
	$(BIN)/presencebridge serve

# Benchmarks: every scenario, emulator and server as separate processes, at sizes that
# take about 10 minutes on a 2-core machine; JSON and PNG in bench/results/.
.PHONY: bench bench-full soak
bench: $(STAMP)
	$(BIN)/presencebridge bench all
	$(BIN)/presencebridge bench growth

# The same up to 100,000 users: well over an hour.
bench-full: $(STAMP)
	$(BIN)/presencebridge bench all --full
	$(BIN)/presencebridge bench growth

# Soak: 30 minutes at 100 PBX events/s over 10,000 users, Teams sync on (poll); server
# RSS growth and errors per window. Not in CI; wants an otherwise idle machine.
soak: $(STAMP)
	$(BIN)/python -m presencebridge.bench.scenarios.soak --minutes 30 --rate 100 --users 10000

# Reliability at full size: 10,000 events with kill -9 at random points, and a longer
# Graph fault storm (tests/reliability; its short form runs in make test). ~4 minutes.
.PHONY: reliability
reliability: $(STAMP)
	PRESENCEBRIDGE_RELIABILITY_EVENTS=10000 $(BIN)/pytest tests/reliability --timeout=1800

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Exactly the versions in package-lock.json; again only when the lock file changes.
$(OIDC_STAMP): $(OIDC)/package.json $(OIDC)/package-lock.json
	npm ci --no-audit --no-fund --prefix $(OIDC)
	touch $(OIDC_STAMP)

$(AXE_STAMP): $(AXE)/package.json $(AXE)/package-lock.json
	npm ci --no-audit --no-fund --prefix $(AXE)
	touch $(AXE_STAMP)

# Debian packages the tests need; installed only when missing and only as root.
# As root also mmdebstrap, which builds the Asterisk 22 chroot (Debian unstable) once, and
# sip-tester (SIPp); without root the Asterisk tests skip, so they are not needed then.
sysdeps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v pulseaudio >/dev/null 2>&1 || missing="$$missing pulseaudio"; \
	command -v parecord >/dev/null 2>&1 || missing="$$missing pulseaudio-utils"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	[ -x /usr/sbin/slapd ] || missing="$$missing slapd"; \
	command -v ldapsearch >/dev/null 2>&1 || missing="$$missing ldap-utils"; \
	if [ "$$(id -u)" = 0 ]; then \
		command -v mmdebstrap >/dev/null 2>&1 || missing="$$missing mmdebstrap"; \
		command -v sipp >/dev/null 2>&1 || missing="$$missing sip-tester"; \
	fi; \
	command -v prosody >/dev/null 2>&1 || missing="$$missing prosody"; \
	[ -x /usr/sbin/ejabberdctl ] || missing="$$missing ejabberd"; \
	command -v kamailio >/dev/null 2>&1 || missing="$$missing kamailio"; \
	ls /usr/lib/*/kamailio/modules/presence.so >/dev/null 2>&1 || missing="$$missing kamailio-presence-modules"; \
	[ -e /usr/share/kamailio/db_sqlite/presence-create.sql ] || missing="$$missing kamailio-sqlite-modules"; \
	command -v baresip >/dev/null 2>&1 || missing="$$missing baresip-core"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "missing Debian packages:$$missing (install them, or run make as root)" >&2; exit 1; fi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
