"""Runs the statements of the ClickHouse view, recorded on the local stack's
ClickHouse 18.16 by chsink's TestSQLCorpus, in order on a current ClickHouse
(chdb-core, ClickHouse 26.x embedded): the DDL, the projector's INSERTs and
reads, the query API's readers, the generation marker, the rebuild lock and
a swap. Each statement must run (parse, analyse, execute) on both; their
results are not compared. Further corpora run after it in the same session,
each in its own database: the analytics dashboard's queries, with the DDL
before them, as internal/dashboards' TestAnalyticsDashboard ran them
(LEDGER_DASHBOARD_SQL), on empty tables.

usage: check.py CORPUS.json [CORPUS.json ...]
"""

import json
import sys
import tempfile

import chdb
from chdb import session as chs


def main() -> int:
    failed = False
    with tempfile.TemporaryDirectory() as path:
        sess = chs.Session(path)
        version = sess.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
        for n, file in enumerate(sys.argv[1:]):
            corpus = json.load(open(file))
            stmts = [s["sql"] for s in corpus["statements"]]
            db = corpus["database"]
            what = "of the ClickHouse view" if n == 0 else f"of {corpus.get('name', file)}"
            failures = 0
            sess.query(f"CREATE DATABASE IF NOT EXISTS {db}")
            for i, sql in enumerate(stmts):
                try:
                    sess.query(sql, "CSV")
                except Exception as e:  # chdb raises a plain Exception with the server's message
                    failures += 1
                    first = sql.splitlines()[0][:160]
                    print(f"sqlcheck: statement {i + 1} of {len(stmts)} {what} fails on ClickHouse {version}: {first}\n  {e}", file=sys.stderr)
            print(f"sqlcheck: {len(stmts) - failures} of {len(stmts)} statements {what} run on ClickHouse {version} (chdb-core {chdb.__version__})")
            failed = failed or failures > 0
        sess.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
