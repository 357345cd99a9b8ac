"""The config tables of README.md and docs/*.md state the schema's defaults (one typed schema, documented).

Every table with a `| key | default | meaning |` header is read: each row's key(s) must exist in the
schema (``massmap config --keys``), and a default written as a literal (number, true/false, null, a
quoted word) must equal the schema's. Descriptive defaults ("estimated", "catalog centre") must
belong to keys whose schema default is null (resolved at run time, next to their section).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from massmap.config import Config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _defaults(cls=Config, prefix=""):
    out = {}
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:  # a section
            out.update(_defaults(type(f.default_factory()), f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = f.default
    return out


DEFAULTS = _defaults()


def _tables(path: Path):
    """(section prefix, key cell, default cell) of every row of the documented config tables."""
    lines = path.read_text().splitlines()
    section = ""
    for i, line in enumerate(lines):
        if line.startswith("#"):
            heading = re.search(r"\(`([a-z_.]+)`", line)  # "## Configuration (`posterior`)"
            section = heading.group(1) + "." if heading else ""
        if re.match(r"\|\s*key\s*\|\s*default\s*\|", line):
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                cells = [c.strip() for c in row.strip("|").split("|")]
                yield section, cells[0], cells[1]


def _keys(section: str, cell: str) -> list[str]:
    """The config keys of a table cell: `a.b`, `a.{b, c}`, `a.b, c` (c in a.b's section)."""
    keys = []
    for name in re.findall(r"`([^`]+)`", cell) or [cell]:
        m = re.match(r"(.*)\{(.*)\}(.*)", name)
        names = [m.group(1) + part.strip() + m.group(3) for part in m.group(2).split(",")] if m else \
            [n.strip() for n in name.split(",")]
        parent = names[0].rsplit(".", 1)[0] + "." if "." in names[0] else ""
        for i, n in enumerate(names):
            n = n if (i == 0 or "." in n) else parent + n
            keys.append(n if n in DEFAULTS or n.startswith(section) and section else section + n)
    return keys


EXPONENT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")  # 1e-5 (YAML 1.1 reads it as a string)


def _literal(text: str):
    """(value, True) for a literal default cell, (None, False) for a description."""
    text = text.replace("`", "").strip()
    if EXPONENT.fullmatch(text):
        return float(text), True
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return None, False
    if isinstance(value, (int, float, bool)) or value is None:
        return value, True
    if isinstance(value, str) and re.fullmatch(r"[a-z_\-]+", value) and value not in ("estimated", "none"):
        return value, True  # a word such as 'auto', 'delta', 'tweedie' is a literal string default
    return None, False


ROWS = [(p.name, s, k, d) for p in DOCS for s, k, d in _tables(p)]


def test_there_are_documented_tables():
    assert len(ROWS) > 60  # README, posterior, healpix, priors, simulate, summarize tables


@pytest.mark.parametrize("doc,section,key_cell,default", ROWS, ids=[f"{r[0]}:{r[2]}" for r in ROWS])
def test_documented_default_is_the_schema_default(doc, section, key_cell, default):
    if "*" in key_cell:
        pytest.skip("a wildcard row (documented key by key elsewhere)")
    keys = _keys(section, key_cell)
    unknown = [k for k in keys if k not in DEFAULTS]
    assert not unknown, f"{doc}: {unknown} are not config keys"
    parts = [d.strip() for d in default.split(",")] if len(keys) > 1 and "," in default else [default] * len(keys)
    for key, text in zip(keys, parts):
        value, literal = _literal(text)
        schema = DEFAULTS[key]
        if literal:
            if isinstance(schema, tuple):
                continue  # lists are written out in prose
            assert value == schema or (isinstance(value, float) and isinstance(schema, (int, float))
                                       and value == pytest.approx(schema)), (doc, key, text, schema)
        else:
            # a descriptive default ('estimated', 'catalog centre', 'usual survey names') is resolved later;
            # 'Planck 2015' names the parameter set of the cosmology section
            assert schema is None or isinstance(schema, (str, tuple)) or text == "Planck 2015", (doc, key, text, schema)
