"""Reading a study design's YAML safely (`studyweb.designs` checks what it says).

Plain values only: a `!!python/...` or any other tag is an error; at most MAX_BYTES, MAX_VALUES
values once aliases are expanded (a "billion laughs" stops there, not at a MemoryError) and
MAX_DEPTH levels deep; an alias inside what it refers to, a key given twice and a key that is
not a plain name are errors. Every error is a DesignError naming the file, the line and the key.
The line of every key path is kept, so later checks can name it too (`design_error`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

# Limits on a design file; real designs are a few kB, a few levels deep, with a few hundred values.
MAX_BYTES = 1 << 20
MAX_VALUES = 100_000  # once YAML aliases are expanded: a "billion laughs" stops here, not at a MemoryError
MAX_DEPTH = 32  # nesting of mappings and lists
_YAML_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_YAML_TAG + t for t in ("str", "int", "float", "bool", "null", "map", "seq")}
_KEY_TAGS = _PLAIN_TAGS | {_YAML_TAG + "timestamp", _YAML_TAG + "merge"}  # a key is its text ('<<' is unknown)


class DesignError(ValueError):
    """A design that cannot be run; the message names the file, line and key."""


def read_yaml(source) -> tuple[Any, str, Path, dict]:
    """(plain data, the name errors give, the folder relative paths start from, {key path: line})
    of a design file's path or of YAML text."""
    text, name, base = _design_text(source)
    reader = _PlainReader(name)
    return reader.plain(_compose(text, name)), name, base, reader.lines


def design_error(name: str, lines: dict, path: tuple, message: str) -> DesignError:
    """A DesignError for the value at key `path`: the file, the nearest line known, the key."""
    where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in path).replace(".[", "[")
    line = next((lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in lines), None)
    message = message if len(message) <= 400 else message[:400] + "..."  # a 1-MiB value stays one line
    return DesignError(f"{name}{f' line {line}' if line else ''}: {where[:200] or 'the design'}: {message}")


def _design_text(source) -> tuple[str, str, Path]:
    """(YAML text, the name errors give, the folder relative method folders start from) of a
    design file's path or of YAML text; DesignError for a missing, too large or non-UTF-8 file."""
    path = Path(source)
    if "\n" in str(source) or path.suffix not in (".yaml", ".yml"):
        if len(str(source)) > MAX_BYTES:
            raise DesignError(f"<design>: {len(str(source))} characters; a design has at most {MAX_BYTES} (1 MiB)")
        return str(source), "<design>", Path.cwd()
    try:
        size = path.stat().st_size if path.is_file() else None
    except OSError:  # e.g. a name too long
        size = None
    if size is None:
        raise DesignError(f"design file {path} does not exist")
    if size > MAX_BYTES:  # checked before the file is read
        raise DesignError(f"{path}: {size} bytes; a design has at most {MAX_BYTES} (1 MiB)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DesignError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise DesignError(f"{path}: cannot be read: {exc.strerror}") from None
    return text, str(path), path.resolve().parent


def _compose(text: str, name: str):
    """The YAML's one document as a node graph (yaml.SafeLoader's composer: no constructor runs
    yet), nesting refused beyond MAX_DEPTH before Python's recursion limit is reached; any YAML
    error becomes a DesignError with its line."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            if self.depth >= MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                                  self.peek_event().start_mark)
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    try:
        node = yaml.compose(text, Loader=Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else text.count("\n", 0, getattr(exc, "position", 0) or 0) + 1
        problem = " ".join(p for p in (getattr(exc, "problem", None), getattr(exc, "context", None)) if p)
        raise DesignError(f"{name} line {line}: not valid YAML: {problem or str(exc).splitlines()[0]}") from None
    if node is None:
        raise DesignError(f"{name}: the design is empty")
    return node


class _PlainReader:
    """A composed YAML node graph as plain data, with the line of every key path."""

    def __init__(self, name: str):
        self.name, self.lines = name, {}
        self.n_values, self.open_nodes, self.loader = 0, set(), None

    def fail(self, path: tuple, message: str):
        raise design_error(self.name, self.lines, path, message)

    def plain(self, node, path: tuple = (), parent=None, aliased: bool = False) -> Any:
        """A composed YAML node as plain data (dicts with text keys, lists, text, ints, floats,
        bools, None), recording the line (1-based) of every key path. Refuses tags other than
        YAML's plain ones (!!python/... included), an alias inside what it refers to, more than
        MAX_VALUES values once aliases are expanded and nesting deeper than MAX_DEPTH."""
        import yaml

        # a node outside its parent is an alias' anchor: its line (and its children's) is elsewhere
        aliased = aliased or parent is not None and not parent.start_mark.index <= node.start_mark.index \
            < parent.end_mark.index
        if not aliased:
            self.lines.setdefault(path, node.start_mark.line + 1)
        self.n_values += 1
        if self.n_values > MAX_VALUES:
            self.fail(path, f"more than {MAX_VALUES} values once YAML aliases are expanded (an alias bomb?)")
        if len(path) > MAX_DEPTH:
            self.fail(path, f"nested more than {MAX_DEPTH} levels deep once YAML aliases are expanded")
        if id(node) in self.open_nodes:
            self.fail(path, "a YAML alias refers to the mapping or list that contains it")
        if node.tag == _YAML_TAG + "timestamp":
            return node.value  # a date stays the text it was written as
        if node.tag not in _PLAIN_TAGS:
            self.fail(path, f"YAML tag {node.tag!r} is not allowed; a design holds plain values only")
        if isinstance(node, yaml.ScalarNode):
            self.loader = self.loader or yaml.SafeLoader("")
            try:
                return self.loader.construct_object(node)
            except (yaml.YAMLError, ValueError, KeyError) as exc:  # e.g. !!int abc, or an int of 5,000 digits
                self.fail(path, f"{node.value[:40]!r} is not a valid {node.tag.rsplit(':', 1)[-1]} ({exc})")
        self.open_nodes.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.plain(item, path + (i,), node, aliased) for i, item in enumerate(node.value)]
            out = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _KEY_TAGS:
                    self.lines[path] = key_node.start_mark.line + 1
                    self.fail(path, f"keys are plain names, got a {key_node.tag.rsplit(':', 1)[-1]} as a key")
                key = key_node.value
                if key in out:
                    self.lines[path + (key,)] = key_node.start_mark.line + 1
                    self.fail(path + (key,), "the key is given twice")
                self.lines[path + (key,)] = key_node.start_mark.line + 1
                out[key] = self.plain(value_node, path + (key,), node, aliased)
            return out
        finally:
            self.open_nodes.discard(id(node))
