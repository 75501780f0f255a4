# The two quick-start commands (see README.md); each sets itself up first.
.PHONY: demo test lint bootstrap

bootstrap:
	@scripts/bootstrap

# The demo exits 1 when it finds the scripted evasions (as it should): that is success here.
demo: bootstrap
	.venv/bin/auditor demo --out auditor-demo || test $$? -eq 1

test: bootstrap
	scripts/run-tests

lint: bootstrap
	.venv/bin/ruff check auditor tests bench
	.venv/bin/ruff format --check auditor tests bench
	.venv/bin/mypy --strict auditor
