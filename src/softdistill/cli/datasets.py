"""``softdistill datasets``: the known datasets, and which a data dir holds."""

from __future__ import annotations

import argparse
import json


def register(sub, parents) -> None:
    d = sub.add_parser(
        "datasets",
        parents=parents,
        help="list known datasets and which are available locally",
        description="List the datasets softdistill knows, with the files each is read from, "
        "and which of them are present in the data dir (--data-dir, else $SOFTDISTILL_DATA). "
        "Any image-folder tree works too: --dataset folder:PATH.",
    )
    d.add_argument("--data-dir", "--data_dir", dest="data_dir", metavar="DIR")
    d.add_argument("--json", action="store_true", help="print JSON instead of a table")
    d.set_defaults(func=run)


def dataset_rows(data_dir) -> list[dict]:
    """One dict per registered dataset: name, summary, available (bool|None), where, note."""
    from softdistill.data import DATASETS, INFO, locate

    rows = []
    for name in DATASETS:
        info = INFO.get(name)
        row = {"name": name + ("PATH" if name.endswith(":") else "")}
        row["summary"] = info.summary if info else ""
        row["sources"] = list(info.sources) if info else []
        row["downloadable"] = bool(info and info.downloadable)
        if info is None:
            row.update(available=None, where="", note="no availability check")
        elif info.builtin:
            row.update(available=True, where="built in", note="")
        elif name.endswith(":"):
            note = "or PATH/train/<class>/ + PATH/test/<class>/" if name == "folder:" else ""
            row.update(available=None, where="", note=note)
        elif data_dir is None:
            row.update(available=None, where="", note="no data dir given")
        else:
            where = locate(name, data_dir)
            note = ""
            if where is None:
                note = "expected " + " or ".join(info.sources)
                if info.downloadable:
                    note += "; --download fetches it"
            row.update(available=where is not None, where=where or "", note=note)
        rows.append(row)
    return rows


def run(args: argparse.Namespace) -> int:
    from softdistill.data import DataError, resolve_data_dir

    data_dir = resolve_data_dir(args.data_dir)
    if data_dir is not None and not data_dir.is_dir():
        raise DataError(f"data directory not found: {data_dir}")
    rows = dataset_rows(data_dir)
    if args.json:
        print(json.dumps({"data_dir": str(data_dir) if data_dir else None, "datasets": rows}))
        return 0
    mark = {True: "yes", False: "no", None: "-"}
    width = max(len(r["name"]) for r in rows)
    header = (
        f"data dir: {data_dir}"
        if data_dir
        else ("data dir: none (pass --data-dir DIR or set SOFTDISTILL_DATA to check availability)")
    )
    print(header)
    for r in rows:
        status = mark[r["available"]]
        detail = r["where"] or r["note"]
        print(f"  {r['name']:<{width}}  {status:<3}  {r['summary']}")
        if detail:
            print(f"  {'':<{width}}       {detail}")
    return 0
