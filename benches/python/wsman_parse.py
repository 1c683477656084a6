"""The WS-Man parse peers of docs/performance.md, on the same document as wsman_parse.

- the seed's path (pyws `xmlToSimpleMap` / `elementToMap`): lxml's etree.fromstring, then
  every element into nested OrderedDicts keyed by local name (through etree.QName), repeated
  names as lists, text stripped and coerced to booleans and numbers the way the seed does it
  (a regex substitution, then float and int attempts), written here to cost what it costs;
- xmltodict.parse, the library Python users reach for.

Prints FIGURE lines: the best of 5 rounds, microseconds per parse. With `FILE MODE N` it only
parses N times with one of them (for callgrind).
"""
import re
import sys
import timeit
from collections import OrderedDict

import xmltodict
from lxml import etree


DECIMAL = re.compile(r"[+-]?[0-9]+\.[0-9]+")


def number(text):
    # As the seed: a regex substitution and a float attempt, then an int one; a failure of
    # either (an exception) keeps the text.
    try:
        as_float = float(DECIMAL.sub("", text))
        as_int = int(text)
        return as_int if str(as_int) == text else as_float
    except ValueError:
        return text


def scalar(text):
    if text is None:
        return None
    stripped = text.strip()
    if stripped == "":
        return ""
    lowered = stripped.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    return number(text)


def element_to_map(element):
    out = OrderedDict()
    if len(element.getchildren()) == 0:
        return out
    for child in element:
        key = etree.QName(child.tag).localname
        if child.text is not None and child.text.strip() != "":
            value = scalar(child.text)
        elif len(child.getchildren()) > 0 or child.text is not None:
            value = element_to_map(child)
        else:
            value = None
        if out.get(key) is not None:
            if not isinstance(out[key], list):
                out[key] = [out[key]]
            out[key].append(value)
        else:
            out[key] = value
    return out


def seed_path(data):
    root = etree.fromstring(data)
    out = OrderedDict()
    tag = etree.QName(root.tag).localname
    out[tag] = OrderedDict()
    for child in root:
        out[tag][etree.QName(child.tag).localname] = element_to_map(child)
    return out


def main():
    data = open(sys.argv[1], "rb").read()
    if len(sys.argv) > 3:
        # `FILE MODE N`: N parses with one parser, for instruction counts under callgrind.
        fn = {"seed_lxml": seed_path, "xmltodict": xmltodict.parse}[sys.argv[2]]
        for _ in range(int(sys.argv[3])):
            fn(data)
        return
    # Both parse the whole document.
    items = seed_path(data)["Envelope"]["Body"]["PullResponse"]["Items"]
    assert sum(len(v) if isinstance(v, list) else 1 for v in items.values()) == 100
    for name, fn in (("seed_lxml", seed_path), ("xmltodict", xmltodict.parse)):
        n = 50
        best = min(timeit.repeat(lambda: fn(data), number=n, repeat=5)) / n
        print(f"FIGURE wsman_{name}_us={best * 1e6:.1f}")


if __name__ == "__main__":
    main()
