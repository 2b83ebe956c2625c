#!/usr/bin/env python3
"""Cloudpods' climc syntax as data: every command with its positionals and option names, read from
the Go option structs of a yunionio/cloudpods checkout (pkg/mcclient/options, cmd/climc/shell).

    python scripts/cloudpods_climc_syntax.py GITDIR [--rev HEAD] > tests/data/cloudpods_climc_syntax.json

GITDIR may be a bare repository (the library's `fetch github:yunionio/cloudpods`); files are read
with `git show`, nothing is checked out. tests/unit/climc/test_cloudpods_syntax.py compares the
table with our climc for every command both have. Only names and arities are kept (no code).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from typing import Any

STRUCT = re.compile(r"type\s+(\w+)\s+struct\s*\{")
FIELD = re.compile(r"^\s*([A-Za-z_][\w, ]*?)\s+(\*?\[?\]?[\w.*\[\]]+(?:\{\})?)\s*(`[^`]*`)?\s*(//.*)?$")
EMBED = re.compile(r"^\s*\*?([\w.]+)\s*(`[^`]*`)?\s*(//.*)?$")
TAG = re.compile(r'(\w+):"([^"]*)"')
MANAGER = re.compile(r'(\w+)\s*=\s*(?:[\w.]+\{)?[\w.]*New\w*Manager\w*\(\s*"([a-z0-9_]+)"\s*,\s*"([a-z0-9_]+)"')
RESCMD = re.compile(r"(\w+)\s*:?=\s*shell\.NewResourceCmd\(\s*&?(?:[\w.]+\.)?(\w+)\s*\)((?:\s*\.\s*\w+\([^)]*\))*)")
CALL = re.compile(r'\b(\w+)\.(List|Show|Create|BatchCreate|Delete|DeleteWithParam|Update|Perform|BatchPerform|'
                  r'PerformClass|Get|GetWithCustomShow|GetMetadata|GetProperty|ClassShow)\(\s*(?:"([\w-]+)"\s*,\s*)?'
                  r'(?:new\(|&)(?:[\w]+\.)?(\w+)')
REG = re.compile(r'\bR\(\s*&?(?:new\()?(?:[\w]+\.)?(\w+)\{?\}?\)?\s*,\s*"([\w-]+)"')


def git(gitdir: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", gitdir, *args], check=True, capture_output=True, text=True).stdout


def kebab(name: str) -> str:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1-\2", name)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1-\2", s)
    return s.lower()


def parse_structs(text: str, out: dict[str, list[dict[str, Any]]]) -> None:
    for m in STRUCT.finditer(text):
        depth, i, body_start = 1, m.end(), m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        fields: list[dict[str, Any]] = []
        for line in text[body_start:i - 1].splitlines():
            line = line.strip()
            if not line or line.startswith("//") or line.startswith("_ "):
                continue
            fm = FIELD.match(line)
            if fm and not fm.group(1).strip().startswith("*"):
                tags = dict(TAG.findall(fm.group(3) or ""))
                for name in (n.strip() for n in fm.group(1).split(",")):
                    if not name or not name[0].isupper():
                        continue
                    fields.append({"name": name, "multi": "[]" in fm.group(2), "tags": tags})
                continue
            em = EMBED.match(line)
            if em:
                fields.append({"embed": em.group(1).rsplit(".", 1)[-1]})
        out.setdefault(m.group(1), fields)


def flatten(structs: dict[str, list[dict[str, Any]]], name: str, seen: frozenset[str] = frozenset()) -> tuple[
        list[dict[str, Any]], list[str]]:
    positionals: list[dict[str, Any]] = []
    options: list[str] = []
    for f in structs.get(name, []):
        if "embed" in f:
            if f["embed"] in seen:
                continue
            p, o = flatten(structs, f["embed"], seen | {name})
            positionals += p
            options += o
            continue
        t = f["tags"]
        if t.get("json") == "-" and t.get("help") is None and not f["name"].isupper():
            pass
        if f["name"].isupper() or t.get("positional") == "true":
            positionals.append({"name": f["name"].lower(), "multi": f["multi"],
                                "optional": t.get("optional") == "true" or f["multi"] and t.get("nargs") == "*"})
        else:
            options.append(t.get("token") or kebab(f["name"]))
            if t.get("alias"):
                options.append(t["alias"])
            if t.get("short-token"):
                options.append(t["short-token"])
    return positionals, options


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("gitdir")
    ap.add_argument("--rev", default="HEAD")
    a = ap.parse_args()
    files = [f for f in git(a.gitdir, "ls-tree", "-r", "--name-only", a.rev).splitlines()
             if f.endswith(".go") and not f.endswith("_test.go") and
             f.startswith(("pkg/mcclient/options/", "cmd/climc/shell/", "pkg/mcclient/modules/"))]
    structs: dict[str, list[dict[str, Any]]] = {}
    keywords: dict[str, str] = {}
    shell_texts = []
    for f in files:
        text = git(a.gitdir, "show", f"{a.rev}:{f}")
        if f.startswith("pkg/mcclient/modules/"):
            for m in MANAGER.finditer(text):
                keywords.setdefault(m.group(1), m.group(2))
            continue
        parse_structs(text, structs)
        if f.startswith("cmd/climc/shell/"):
            shell_texts.append(text)
    commands: dict[str, dict[str, Any]] = {}

    def add(cmd: str, struct: str) -> None:
        p, o = flatten(structs, struct)
        commands.setdefault(cmd, {"struct": struct, "positionals": p, "options": sorted(set(o))})

    for text in shell_texts:
        for m in REG.finditer(text):
            add(m.group(2), m.group(1))
        rescmds: dict[str, str] = {}
        for m in RESCMD.finditer(text):
            kw = keywords.get(m.group(2), "")
            kwm = re.search(r'\.(?:WithKeyword|SetKeyword)\(\s*"([\w-]+)"', m.group(3) or "")
            rescmds[m.group(1)] = kwm.group(1) if kwm else kw
        for m in CALL.finditer(text):
            kw = rescmds.get(m.group(1))
            if not kw:
                continue
            meth, action, struct = m.group(2), m.group(3), m.group(4)
            verb = {"List": "list", "Show": "show", "ClassShow": "show", "Create": "create", "BatchCreate": "create",
                    "Delete": "delete", "DeleteWithParam": "delete", "Update": "update",
                    "GetMetadata": "metadata"}.get(meth, action)
            if verb:
                add(f"{kw.replace('_', '-')}-{verb}", struct)
    rev = git(a.gitdir, "rev-parse", a.rev).strip()
    json.dump({"source": "github.com/yunionio/cloudpods", "commit": rev, "commands": dict(sorted(commands.items()))},
              sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
