#!/usr/bin/python3
"""label_file.py - read a label file as vggserve does (model/labels.h), for the converters.

Formats, told apart by the content: one label per line (CRLF tolerated, the last newline
optional), TorchServe's index_to_name.json ({"0": "cat"} or {"0": ["n02123045", "cat"]}),
Keras's class_indices.json ({"cat": 0}) or a JSON list. read_labels() returns
[(wnid or None, name)] in class order; labels_metadata() is the text the converters embed
as the safetensors metadata "labels", which vggserve parses with the same rules.
"""
import json
import re

MAX_BYTES = 4 << 20
MAX_CLASSES = 100000
MAX_NAME = 256
MAX_DEPTH = 2


def _check(s, where):
    n = len(s.encode("utf-8"))
    if n == 0 or n > MAX_NAME:
        raise ValueError(f"{where}: a label must be 1..{MAX_NAME} bytes, not {n}")
    bad = [c for c in s if ord(c) < 0x20 or ord(c) == 0x7F]
    if bad:
        raise ValueError(f"{where}: control character 0x{ord(bad[0]):02x}")
    return s


def _depth(text):
    depth, in_str, esc = 0, False, False
    for c in text:
        if in_str:
            in_str, esc = (True, False) if esc else (c != '"', c == "\\")
        elif c == '"':
            in_str = True
        elif c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
        elif c in "]}":
            depth -= 1


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate key in {keys}"[:200])
    return dict(pairs)


def _from_object(obj):
    n, out = len(obj), [None] * len(obj)
    keras = obj and type(next(iter(obj.values()))) is int
    for key, v in obj.items():
        if keras:
            if type(v) is not int or not 0 <= v < n or out[v]:
                raise ValueError(f'key "{key}": index {v!r} is not free in 0..{n - 1}')
            out[v] = (None, _check(key, f'key "{key}"'))
            continue
        if not re.fullmatch(r"0|[1-9][0-9]{0,5}", key) or int(key) >= n:
            raise ValueError(f'key "{key}": not a class index 0..{n - 1}')
        if isinstance(v, str):
            out[int(key)] = (None, _check(v, f'key "{key}"'))
        elif isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v):
            out[int(key)] = (_check(v[0], f'key "{key}"'), _check(v[1], f'key "{key}"'))
        else:
            raise ValueError(f'key "{key}": the value must be a name or [wnid, name]')
    return out


def parse_labels(raw):
    """[(wnid or None, name)] from a label file's bytes. ValueError says what is wrong."""
    if len(raw) > MAX_BYTES:
        raise ValueError(f"{len(raw)} bytes; at most {MAX_BYTES}")
    if b"\0" in raw:
        raise ValueError("a NUL byte: binary data, not labels")
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 ({e.reason} at offset {e.start})") from None
    head = text.lstrip(" \t\r\n")
    if not head:
        raise ValueError("empty: no labels")
    if head[0] in "[{":
        _depth(text)
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as e:
            raise ValueError(f"JSON: {e}") from None
        if isinstance(data, dict):
            out = _from_object(data)
        else:
            out = [(None, _check(v, f"element {i}") if isinstance(v, str) else None)
                   for i, v in enumerate(data)]
            if any(name is None for _, name in out):
                raise ValueError("a JSON list must hold strings only")
    else:
        lines = (text[:-1] if text.endswith("\n") else text).split("\n")
        out = [(None, _check(s[:-1] if s.endswith("\r") else s, f"line {i + 1}"))
               for i, s in enumerate(lines)]
    if not out or len(out) > MAX_CLASSES:
        raise ValueError(f"{len(out)} labels; 1..{MAX_CLASSES} allowed")
    return out


def read_labels(path):
    with open(path, "rb") as f:
        return parse_labels(f.read(MAX_BYTES + 1))


def labels_metadata(labels):
    """The "labels" metadata text: a JSON list, or index_to_name when some carry a wnid."""
    if all(w is None for w, _ in labels):
        return json.dumps([n for _, n in labels], ensure_ascii=False)
    return json.dumps({str(i): [w, n] if w else n for i, (w, n) in enumerate(labels)},
                      ensure_ascii=False)
