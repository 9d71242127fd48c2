# Fleetdesk: `make demo` serves the dashboard on the demo company; `make test` runs every test.
FD := .venv/bin/fleetdesk
UI_PORT ?= 8501

.PHONY: setup demo db test lint clean

setup:
	@scripts/bootstrap.sh

db: setup
	@$(FD) db start
	@$(FD) db migrate

# The demo pays through localstripe, a Stripe-compatible server on this machine (unset STRIPE_API_BASE: real Stripe).
demo: export STRIPE_API_BASE ?= http://127.0.0.1:8420
demo: db
	@$(FD) demo-data
	@$(FD) payments server start
	@# the outbox worker (notifications to the development mailbox, scheduled jobs) runs beside the web processes
	@mkdir -p .fleetdesk; $(FD) worker >> .fleetdesk/worker.log 2>&1 & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	  echo "  worker       fleetdesk worker (pid $$worker; log: .fleetdesk/worker.log)"; \
	  $(FD) serve --port $(UI_PORT)

lint: setup
	.venv/bin/ruff check .
	.venv/bin/lint-imports

test: setup lint
	@scripts/bootstrap.sh --browser
	@$(FD) db start
	.venv/bin/pytest

clean:
	-$(FD) payments server stop
	-$(FD) db stop
	rm -rf .fleetdesk .venv

.PHONY: bench
bench: db  # the benchmarks (bench/); the first run builds their company in its own database
	.venv/bin/python -m bench
