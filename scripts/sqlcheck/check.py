"""Runs the statements of the ClickHouse view, recorded on the local stack's
ClickHouse 18.16 by chsink's TestSQLCorpus, in order on a current ClickHouse
(chdb-core, ClickHouse 26.x embedded): the DDL, the projector's INSERTs and
reads, the query API's readers, the generation marker, the rebuild lock and
a swap. Each statement must run (parse, analyse, execute) on both; their
results are not compared.

usage: check.py CORPUS.json
"""

import json
import sys
import tempfile

import chdb
from chdb import session as chs


def main() -> int:
    corpus = json.load(open(sys.argv[1]))
    stmts = [s["sql"] for s in corpus["statements"]]
    db = corpus["database"]
    failures = 0
    with tempfile.TemporaryDirectory() as path:
        sess = chs.Session(path)
        version = sess.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
        sess.query(f"CREATE DATABASE IF NOT EXISTS {db}")
        for i, sql in enumerate(stmts):
            try:
                sess.query(sql, "CSV")
            except Exception as e:  # chdb raises a plain Exception with the server's message
                failures += 1
                first = sql.splitlines()[0][:160]
                print(f"sqlcheck: statement {i + 1} of {len(stmts)} fails on ClickHouse {version}: {first}\n  {e}", file=sys.stderr)
        sess.close()
    print(f"sqlcheck: {len(stmts) - failures} of {len(stmts)} statements of the ClickHouse view run on ClickHouse {version} (chdb-core {chdb.__version__})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
