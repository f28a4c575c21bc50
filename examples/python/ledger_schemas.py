"""The ledger's Avro schemas, read from the repository's schemas/ folder, and
single-object encoding (Avro specification) with fastavro."""

import glob
import io
import json
import os

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

MAGIC = b"\xc3\x01"


def spec_fingerprint(schema):
    """The 8 header bytes: CRC-64-AVRO of the Parsing Canonical Form, in the
    order they are written (fastavro's hex is already little-endian)."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def _parse(path):
    with open(path, encoding="utf-8") as f:
        return parse_schema(json.load(f), named_schemas={})


def current(schemas_dir):
    """The current schema of every record, by full name (schemas/*.avsc)."""
    out = {}
    for path in sorted(glob.glob(os.path.join(schemas_dir, "*.avsc"))):
        s = _parse(path)
        out[s["name"]] = s
    return out


def history(schemas_dir):
    """Every released writer schema (schemas/history), by the 8 header bytes
    its file name gives: <full name>.<16 hex digits>.avsc. Versions released
    before the ledger used the specification's fingerprints are there twice,
    under their legacy fingerprint too. Returns {header bytes: (schema, legacy)}."""
    out = {}
    for path in sorted(glob.glob(os.path.join(schemas_dir, "history", "*.avsc"))):
        fp = bytes.fromhex(os.path.basename(path).rsplit(".", 2)[-2])
        s = _parse(path)
        out[fp] = (s, fp != spec_fingerprint(s))
    return out


def encode(schema, record):
    """Single-object encoding of record: C3 01, fingerprint, Avro body."""
    body = io.BytesIO()
    schemaless_writer(body, schema, record)
    return MAGIC + spec_fingerprint(schema) + body.getvalue()


def decode(value, writers, readers):
    """Decodes a single-object encoded value with the writer schema its
    fingerprint names, resolved to the current schema of that name. Returns
    (full name, record, whether the fingerprint is a legacy one)."""
    if value[:2] != MAGIC:
        raise ValueError("not single-object encoded")
    found = writers.get(value[2:10])
    if found is None:
        raise ValueError("unknown fingerprint " + value[2:10].hex())
    writer, legacy = found
    name = writer["name"]
    return name, schemaless_reader(io.BytesIO(value[10:]), writer, readers[name]), legacy


def client_config(path):
    """The librdkafka properties of the file at path (key=value lines, # for
    comments), e.g. security.protocol, sasl.*, ssl.ca.location; {} without one."""
    if not path:
        return {}
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise SystemExit(f"{path}: want key=value, got {line!r}")
            out[key.strip()] = value.strip()
    return out
