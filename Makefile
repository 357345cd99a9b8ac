# massmap — every user-facing job is a make target. `make demo` and `make test` work from a clean clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e ".[test]"
	touch $(STAMP)

MM   := $(VENV)/bin/massmap
DEMO := demo_output

# The whole pipeline on an embedded default field (configs/demo.yaml): deterministic, a few minutes.
demo: $(STAMP)
	mkdir -p $(DEMO)
	$(MM) simulate -o $(DEMO)/maps.h5 --config configs/demo.yaml --overwrite
	$(MM) mock-catalog $(DEMO)/maps.h5 --index 0 -o $(DEMO)/catalog.fits --truth-out $(DEMO)/truth.fits \
	    --config configs/demo.yaml --overwrite
	$(MM) reconstruct $(DEMO)/catalog.fits -o $(DEMO)/recon.fits --config configs/demo.yaml --overwrite
	$(MM) summarize $(DEMO)/recon.fits --truth $(DEMO)/truth.fits -o $(DEMO)/summary --config configs/demo.yaml \
	    --overwrite
	@echo "demo done: maps in $(DEMO)/recon.fits; report $(DEMO)/summary/report.html"

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) demo_output

bench: $(STAMP)
	bash benchmarks/run_all.sh
