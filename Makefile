# The two quick-start commands (see README.md); each sets itself up first.
.PHONY: demo test lint bootstrap

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	.venv/bin/auditor demo --out auditor-demo

test: bootstrap
	scripts/run-tests

lint: bootstrap
	.venv/bin/ruff check auditor tests bench
	.venv/bin/ruff format --check auditor tests bench
	.venv/bin/mypy --strict auditor
