"""Derive the multi-label and hierarchical demo sets from the multi-class demo set, deterministically.

    python scripts/make_demo_multilabel.py        # rewrites tritoncls/data/demo_multilabel and demo_hierarchical

Each split is built from the same split of ``tritoncls/data/demo`` (so no message crosses splits): 40% of
the texts as they are (one intent), 30% as two messages of different intents joined into one (two
intents), and 30% small talk with no intent (an empty label field). The hierarchical set labels
the same texts with paths of a two-level tree (commerce: billing, shipping, returns; support: technical,
account), every level listed.
"""

from __future__ import annotations

import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "tritoncls" / "data"
SOURCE = ROOT / "demo"
INTENTS = ("billing", "shipping", "technical", "account", "returns")
TREE = {"billing": "commerce", "shipping": "commerce", "returns": "commerce", "technical": "support",
        "account": "support"}
JOINS = (" and ", ", also ", ". Another thing: ", " plus ", "; and ")
OPENINGS = ("hi", "hello", "hey there", "good morning", "ok", "cheers")
CLOSINGS = ("that is all for today", "is anyone there", "have a nice weekend", "great service, thank you",
            "got it", "never mind, sorted it out myself", "just saying hi", "you folks are awesome",
            "thanks for the quick answer", "sorry, wrong chat", "all good now", "bye for now")
SIZES = {"train": 400, "dev": 100, "test": 100}


def read(split: str) -> list[tuple[str, str]]:
    lines = (SOURCE / f"{split}.txt").read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines if line.strip()]  # type: ignore[misc]


def build(split: str, rng: random.Random) -> list[tuple[str, tuple[str, ...]]]:
    """Texts with their intents: 40% singles, 30% pairs of different intents, 30% small talk (no intent)."""
    pool = read(split)
    rng.shuffle(pool)
    size = SIZES[split]
    singles = [(text, (label,)) for text, label in pool[: size * 2 // 5]]
    rest = pool[size * 2 // 5:]
    pairs = []
    while len(pairs) < size * 3 // 10:
        a, la = rest.pop()
        partner = next((i for i, (_, label) in enumerate(rest) if label != la), None)
        if partner is None:  # only messages of the same intent are left: they stay single
            singles.append((a, (la,)))
            break
        b, lb = rest.pop(partner)
        pairs.append((a.rstrip("?!. ") + rng.choice(JOINS) + b[:1].lower() + b[1:], tuple(sorted((la, lb)))))
    talk = [(f"{rng.choice(OPENINGS)}, {rng.choice(CLOSINGS)}{rng.choice(('', '!', '.'))}", ())
            for _ in range(size - len(singles) - len(pairs))]
    rows = singles + pairs + talk
    rng.shuffle(rows)
    return rows


def write(folder: Path, rows_by_split: dict[str, list[tuple[str, tuple[str, ...]]]], labels: list[str],
          field) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "label.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    for split, rows in rows_by_split.items():
        (folder / f"{split}.txt").write_text("".join(f"{t}\t{field(ls)}\n" for t, ls in rows), encoding="utf-8")
    (folder / "data.txt").write_text("".join(f"{t}\n" for t, _ in rows_by_split["test"][:40]), encoding="utf-8")


def main() -> None:
    rng = random.Random(7)
    rows = {split: build(split, rng) for split in SIZES}
    write(ROOT / "demo_multilabel", rows, list(INTENTS), lambda ls: ",".join(ls))
    groups = sorted(set(TREE.values()))
    paths = [p for g in groups for p in (g, *[f"{g}##{i}" for i in INTENTS if TREE[i] == g])]

    def path_field(ls: tuple[str, ...]) -> str:
        return ",".join(sorted({TREE[i] for i in ls} | {f"{TREE[i]}##{i}" for i in ls}, key=paths.index))

    write(ROOT / "demo_hierarchical", rows, paths, path_field)


if __name__ == "__main__":
    main()
