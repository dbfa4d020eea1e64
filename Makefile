# Two commands on a fresh machine: `make run` (set up, then clean the built-in sample with the text
# recipe) and `make test` (set up, then the whole test suite). Everything installs into .venv.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev,train,api,ray,megatron

.PHONY: setup run test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m steel_data.sample build/sample
	$(BIN)/steel run recipes/steel-text.yaml -i build/sample/input -o build/sample/out --overwrite \
		--set perplexity_filter.model_dir=build/sample/models
	$(BIN)/steel stats build/sample/out

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf build .pytest_cache
