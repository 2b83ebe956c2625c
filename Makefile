# The README's two commands are ./scripts/demo.sh and ./scripts/test.sh; these are shortcuts.
.PHONY: demo test test-fast bench venv binary
venv:
	./scripts/bootstrap.sh
demo:
	./scripts/demo.sh
test:
	./scripts/test.sh
test-fast:
	./scripts/test.sh -m "not full"
bench: venv
	.venv/bin/python bench/cli_startup.py
	.venv/bin/python bench/controller.py
binary: venv
	./scripts/build-binary.sh
