# lakeforge — `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SPARK_JARS ?= .cache/spark-jars
SPARK_STAMP := $(SPARK_JARS)/.fetched
BI_JARS ?= .cache/bi-jars
BI_STAMP := $(BI_JARS)/.fetched
AIRFLOW_VENV  := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
DEMO_DIR ?= lakeforge-demo
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install spark-deps airflow-env postgres browser bi-drivers demo test lint unit quick tutorial bench bench-quick reliability clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lakeforge needs Python >= 3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,dev,bench]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install lakeforge with test and dev tools (pinned by constraints.txt)

$(SPARK_STAMP): deps/spark/pom.xml
	mvn -q -B -f deps/spark/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
	    -DincludeGroupIds=io.delta -DoutputDirectory=$(abspath $(SPARK_JARS))
	touch $(SPARK_STAMP)

spark-deps: $(SPARK_STAMP) ## fetch Delta Lake's jars for engine: spark from Maven Central into .cache/spark-jars

# Airflow pins its own stack (fastapi, sqlalchemy ...): it gets a venv of its own, and the DAG's tasks call the
# lakeforge of .venv (the deployment design: separate environments)
$(AIRFLOW_STAMP): constraints-airflow.txt
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -c constraints-airflow.txt apache-airflow
	touch $(AIRFLOW_STAMP)

airflow-env: $(AIRFLOW_STAMP) ## Airflow 3 in .venv-airflow (pinned by constraints-airflow.txt), for the DAG test

# The PostgreSQL warehouse tests start a server of their own (initdb + postgres in a temporary folder): they
# need the server binaries, which Debian/Ubuntu keep in /usr/lib/postgresql/<major>/bin (off PATH)
postgres: ## PostgreSQL server binaries for the warehouse tests (apt when missing)
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	    echo "PostgreSQL server binaries: $$(command -v initdb || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"; \
	elif [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y --no-install-recommends postgresql; \
	else \
	    echo "make postgres: no PostgreSQL server binaries (initdb); install them as root:" \
	         "apt-get install -y --no-install-recommends postgresql" >&2; exit 1; \
	fi

# The browser tests (tests/browser.py) drive Debian's Chromium through Playwright for Python, which is given
# its executable_path and never downloads a browser of its own; fonts-liberation gives the screenshots the
# metric-compatible Arial/Helvetica/Times faces
browser: ## Chromium for the browser tests: Debian's chromium (apt when missing), driven by Playwright
	@if [ -x /usr/bin/chromium ] && [ -d /usr/share/fonts/truetype/liberation ]; then \
	    echo "Chromium: $$(/usr/bin/chromium --version 2>/dev/null)"; \
	elif [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	        chromium fonts-liberation >/dev/null && echo "Chromium: $$(/usr/bin/chromium --version 2>/dev/null)"; \
	else \
	    echo "make browser: no /usr/bin/chromium; install it as root:" \
	         "apt-get install -y --no-install-recommends chromium fonts-liberation" >&2; exit 1; \
	fi

# The BI tools' drivers, for tests/integration/test_bi_tools.py (docs/bi-tools.md): the JDBC jars Tableau uses
# (DuckDB's, at the duckdb package's version, and pgJDBC) from Maven Central; psqlODBC under unixODBC (the ODBC
# path of Power BI and Tableau) and openssl (the Snowflake key pair) from apt
$(BI_STAMP): deps/bi/pom.xml
	mvn -q -B -f deps/bi/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
	    -DoutputDirectory=$(abspath $(BI_JARS))
	touch $(BI_STAMP)

bi-drivers: $(BI_STAMP) ## drivers for the BI tests: JDBC jars (Maven, .cache/bi-jars), psqlODBC (apt when missing)
	@if odbcinst -q -d -n "PostgreSQL Unicode" >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1; then \
	    echo "ODBC drivers: $$(odbcinst -q -d | tr -d '[]' | paste -sd, -)"; \
	elif [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	        unixodbc odbc-postgresql openssl >/dev/null && echo "ODBC drivers: $$(odbcinst -q -d | tr -d '[]' | paste -sd, -)"; \
	else \
	    echo "make bi-drivers: no psqlODBC (\"PostgreSQL Unicode\") under unixODBC; install it as root:" \
	         "apt-get install -y --no-install-recommends unixodbc odbc-postgresql openssl" >&2; exit 1; \
	fi

demo: $(STAMP) ## set up, then run the example pipeline end to end (in ./lakeforge-demo)
	$(VENV)/bin/lakeforge demo $(DEMO_DIR)

lint: $(STAMP) ## ruff, mypy and the import layers (import-linter: pyproject.toml's [tool.importlinter])
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: $(STAMP) $(SPARK_STAMP) $(AIRFLOW_STAMP) postgres browser bi-drivers lint ## set up, lint, then the whole test suite (slow tests included)
	$(PY) -m pytest -n 2 --dist loadscope $(PYTEST_ARGS)
	$(MAKE) --no-print-directory bench-quick

unit: $(STAMP) ## tests/unit only: no servers, no Spark (under a minute); mirrors the package layout
	$(PY) -m pytest -n 2 tests/unit $(PYTEST_ARGS)

quick: $(STAMP) ## every test not marked slow, all folders (starts moto, fakesnow, PostgreSQL; about 11 min)
	$(PY) -m pytest -n 2 --dist loadscope -m "not slow" $(PYTEST_ARGS)

tutorial: $(STAMP) ## run docs/tutorial.md's commands in order and check what they print (about 3 min)
	$(PY) -m pytest tests/tutorial $(PYTEST_ARGS)

bench: $(STAMP) $(SPARK_STAMP) ## benchmarks (full mode, long); writes docs/benchmarks.md
	$(PY) bench/run.py

bench-quick: $(STAMP) ## the benchmarks' quick mode (CI): cost at scale and an incremental run, small sizes
	@mkdir -p bench/.work
	$(PY) bench/run.py --quick > bench/.work/quick.log

# SIGKILLs in every stage, corrupt and adversarial files, concurrent runs, S3 faults (a fault-injecting proxy before
# moto), lost PostgreSQL connections, a full disk (a tmpfs: needs root); the figures go to
# tests/reliability/.results/$(RELIABILITY).json, which docs/reliability.md quotes
RELIABILITY ?= full
reliability: $(STAMP) postgres ## reliability suite (RELIABILITY=full, the report's; quick, CI's); docs/reliability.md
	LAKEFORGE_RELIABILITY=$(RELIABILITY) $(PY) -m pytest tests/reliability -v $(PYTEST_ARGS)

clean: ## remove the virtual environments and caches (never touches ../shared)
	rm -rf $(VENV) $(AIRFLOW_VENV) .cache .pytest_cache .mypy_cache .ruff_cache $(DEMO_DIR) bench/.work
