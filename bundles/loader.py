"""Load `bundle.yml` + its includes for one target: merge, interpolate, validate.

Everything that can be wrong is collected as a `Diagnostic` with `file:line`, so
`validate` reports all problems at once instead of the first one.
"""

from __future__ import annotations

import copy
import getpass
import glob
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bundles import checks
from bundles.errors import Diagnostic, Loc, did_you_mean
from bundles.gitinfo import GitInfo, git_info
from bundles.models import BundleFile, Resources, Target
from bundles.source import Located, load_yaml

BUNDLE_FILE = "bundle.yml"
REF_RE = re.compile(r"\$\{([^}]*)\}")
NAMED_KINDS = ("experiments", "registered_models", "jobs", "serving_endpoints", "monitors")


@dataclass
class ResolvedBundle:
    """One target's view of the bundle: final names, variables applied, validated."""

    root: Path
    name: str
    target: str
    target_cfg: Target
    stack: str
    mode: str
    user: str
    git: GitInfo
    variables: dict[str, Any]
    resources: Resources
    packages: list[str] | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def run_as(self) -> str:
        return self.target_cfg.run_as or "ci"

    def deployment_id(self) -> str:
        """Where this target's state lives in the env; development deployments are per user."""
        base = f"{self.name}.{self.target}"
        return f"{base}.{self.user}" if self.mode == "development" else base


def current_user() -> str:
    """The person deploying (dev-mode name prefix); CONVEYOR_USER overrides the OS user."""
    raw = os.environ.get("CONVEYOR_USER") or getpass.getuser()
    return re.sub(r"[^A-Za-z0-9_]", "_", raw).lower()


# --- merging -------------------------------------------------------------------------------


def _graft(doc: Located, src: Located, src_path: tuple, dst_path: tuple) -> None:
    """Copy the location entries under src_path in `src` to dst_path in `doc`."""
    n = len(src_path)
    for path, loc in list(src.locs.items()):
        if path[:n] == src_path:
            doc.locs[dst_path + path[n:]] = loc


def _deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _deep_merge(base[key], value) if key in base else value
        return out
    return over


def _include(root: Path, doc: Located, diags: list[Diagnostic]) -> None:
    patterns = doc.data.get("include", [])
    if not isinstance(patterns, list):
        return  # the model check reports the wrong type
    resources = doc.data.setdefault("resources", {})
    if not isinstance(resources, dict):
        return
    origin: dict[tuple, Loc] = {}
    for kind, entries in resources.items():
        if isinstance(entries, dict):
            for key in entries:
                origin[(kind, key)] = doc.loc(("resources", kind, key))
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            continue
        matches = sorted(glob.glob(str(root / pattern), recursive=True))
        if not matches:
            diags.append(Diagnostic("warning", f"include {pattern!r} matches no file", doc.loc(("include", i))))
        for match in matches:
            display = os.path.relpath(match, root)
            sub, errs = load_yaml(Path(match), display)
            diags.extend(errs)
            if sub is None:
                continue
            if not isinstance(sub.data, dict):
                diags.append(Diagnostic("error", "an included file must be a mapping with `resources`", sub.loc(())))
                continue
            for top in sub.data:
                if top != "resources":
                    diags.append(Diagnostic(
                        "error",
                        f"unknown key {top!r} in an included file (only `resources` is allowed){did_you_mean(top, ['resources'])}",
                        sub.loc((top,)),
                    ))
            sub_res = sub.data.get("resources") or {}
            if not isinstance(sub_res, dict):
                diags.append(Diagnostic("error", "`resources` must be a mapping", sub.loc(("resources",))))
                continue
            accepted: set[tuple] = set()
            for kind, entries in sub_res.items():
                if not isinstance(entries, dict):
                    resources[kind] = entries
                    _graft(doc, sub, ("resources", kind), ("resources", kind))
                    continue
                if kind not in resources:
                    doc.locs[("resources", kind)] = sub.loc(("resources", kind))
                bucket = resources.setdefault(kind, {})
                if not isinstance(bucket, dict):
                    continue
                for key, value in entries.items():
                    if (kind, key) in origin:
                        diags.append(Diagnostic(
                            "error",
                            f"duplicate resource {kind}.{key} (first defined at {origin[(kind, key)]})",
                            sub.loc(("resources", kind, key)),
                        ))
                        continue
                    bucket[key] = value
                    origin[(kind, key)] = sub.loc(("resources", kind, key))
                    accepted.add((kind, key))
            for path, loc in sub.locs.items():  # one pass per file (not per resource)
                if len(path) >= 3 and path[0] == "resources" and (path[1], path[2]) in accepted:
                    doc.locs[path] = loc


def _pick_target(doc: Located, requested: str | None, diags: list[Diagnostic]) -> str | None:
    targets = doc.data.get("targets")
    if not isinstance(targets, dict) or not targets:
        diags.append(Diagnostic("error", "bundle.yml defines no `targets`", doc.loc(("targets",))))
        return None
    if requested:
        if requested not in targets:
            diags.append(Diagnostic(
                "error",
                f"unknown target {requested!r} (targets: {', '.join(targets)}){did_you_mean(requested, targets)}",
                doc.loc(("targets",)),
            ))
            return None
        return requested
    defaults = [n for n, t in targets.items() if isinstance(t, dict) and t.get("default") is True]
    if len(defaults) == 1:
        return defaults[0]
    diags.append(Diagnostic("error", "no target given: pass -t <target> or mark one target `default: true`", doc.loc(("targets",))))
    return None


# --- variables and interpolation -----------------------------------------------------------


@dataclass
class _Vars:
    values: dict[str, Any]
    missing: set[str]
    declared: set[str]
    used: set[str] = field(default_factory=set)


def _resolve_vars(doc: Located, target: str, cli_vars: dict[str, str], environ: dict[str, str],
                  diags: list[Diagnostic]) -> _Vars:
    decls = doc.data.get("variables") or {}
    if not isinstance(decls, dict):
        decls = {}
    tvars = ((doc.data.get("targets") or {}).get(target) or {}).get("variables") or {}
    if not isinstance(tvars, dict):
        tvars = {}
    for name in cli_vars:
        if name not in decls:
            diags.append(Diagnostic("error", f"--var {name}: no such variable{did_you_mean(name, decls)}"))
    for name in tvars:
        if name not in decls:
            diags.append(Diagnostic(
                "error", f"target {target!r} sets undeclared variable {name!r}{did_you_mean(name, decls)}",
                doc.loc(("targets", target, "variables", name)),
            ))
    values: dict[str, Any] = {}
    missing: set[str] = set()
    for name, decl in decls.items():
        default = decl.get("default") if isinstance(decl, dict) else None
        if name in cli_vars:
            values[name] = cli_vars[name]
        elif f"BUNDLE_VAR_{name}" in environ:
            values[name] = environ[f"BUNDLE_VAR_{name}"]
        elif name in tvars:
            values[name] = tvars[name]
        elif default is not None:
            values[name] = default
        else:
            missing.add(name)
    return _Vars(values=values, missing=missing, declared=set(decls))


class _Interpolator:
    def __init__(self, doc: Located, diags: list[Diagnostic], builtins: dict[str, Any], vars_: _Vars):
        self.doc, self.diags, self.builtins, self.vars = doc, diags, builtins, vars_
        self.names: dict[tuple[str, str], str] = {}
        self._depth = 0

    def lookup(self, ref: str, path: tuple, final: bool) -> tuple[bool, Any]:
        """(found, value); reports the problem itself when not found."""
        loc = self.doc.loc(path)
        ref = ref.strip()
        if ref.startswith("var."):
            name = ref[4:]
            self.vars.used.add(name)
            if name in self.vars.values:
                value = self.vars.values[name]
                if isinstance(value, str) and "${" in value:  # a variable built from others
                    if self._depth > 10:
                        self.diags.append(Diagnostic("error", f"variable {name!r} refers to itself", loc))
                        return False, None
                    self._depth += 1
                    try:
                        value = self.string(value, path, final)
                    finally:
                        self._depth -= 1
                return True, value
            if name in self.vars.missing:
                self.diags.append(Diagnostic(
                    "error",
                    f"variable {name!r} has no value: pass --var {name}=..., set BUNDLE_VAR_{name}, "
                    f"set it in the target, or give it a default",
                    loc,
                ))
            else:
                self.diags.append(Diagnostic(
                    "error", f"undefined variable ${{{ref}}}{did_you_mean(name, self.vars.declared)}", loc
                ))
            return False, None
        if ref in self.builtins:
            return True, self.builtins[ref]
        if ref.startswith("resources."):
            if not final:
                return False, None
            parts = ref.split(".")
            if len(parts) != 4:
                self.diags.append(Diagnostic("error", f"bad reference ${{{ref}}}: use ${{resources.<kind>.<key>.<field>}}", loc))
                return False, None
            _, kind, key, attr = parts
            resources = self.doc.data.get("resources") or {}
            entries = resources.get(kind) if isinstance(resources, dict) else None
            if not isinstance(entries, dict) or key not in entries:
                known = [f"{k}.{n}" for k, v in resources.items() if isinstance(v, dict) for n in v]
                self.diags.append(Diagnostic(
                    "error", f"unknown resource in ${{{ref}}}{did_you_mean(f'{kind}.{key}', known)}", loc
                ))
                return False, None
            if attr == "name" and (kind, key) in self.names:
                return True, self.names[(kind, key)]
            entry = entries[key]
            if isinstance(entry, dict) and attr in entry and not isinstance(entry[attr], (dict, list)):
                return True, entry[attr]
            self.diags.append(Diagnostic("error", f"${{{ref}}}: resource has no scalar field {attr!r}", loc))
            return False, None
        if ref.startswith("bundle."):
            known = [k for k in self.builtins if k.startswith("bundle.")]
            self.diags.append(Diagnostic("error", f"unknown reference ${{{ref}}}{did_you_mean(ref, known)}", loc))
            return False, None
        self.diags.append(Diagnostic(
            "error", f"unknown reference ${{{ref}}} (use var.*, bundle.* or resources.*)", loc
        ))
        return False, None

    def string(self, value: str, path: tuple, final: bool) -> Any:
        whole = REF_RE.fullmatch(value)
        if whole:
            found, got = self.lookup(whole.group(1), path, final)
            return got if found else value

        def sub(match: re.Match) -> str:
            found, got = self.lookup(match.group(1), path, final)
            return str(got) if found else match.group(0)

        return REF_RE.sub(sub, value)

    def walk(self, node: Any, path: tuple, final: bool) -> Any:
        if isinstance(node, dict):
            return {k: self.walk(v, path + (k,), final) for k, v in node.items()}
        if isinstance(node, list):
            return [self.walk(v, path + (i,), final) for i, v in enumerate(node)]
        if isinstance(node, str) and "${" in node:
            return self.string(node, path, final)
        return node


# --- model validation ----------------------------------------------------------------------


def _unwrap(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        out = []
        for arg in typing.get_args(tp):
            out.extend(_unwrap(arg))
        return out
    return [tp]


def _model_at(path: tuple) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `path` (for did-you-mean)."""
    current: list[Any] = [BundleFile]
    for part in path:
        nxt: list[Any] = []
        for tp in current:
            for t in _unwrap(tp):
                origin = typing.get_origin(t)
                if isinstance(t, type) and issubclass(t, BaseModel) and isinstance(part, str):
                    if part in t.model_fields:
                        nxt.append(t.model_fields[part].annotation)
                elif origin is dict:
                    nxt.append(typing.get_args(t)[1])
                elif origin is list and isinstance(part, int):
                    nxt.append(typing.get_args(t)[0])
        current = nxt
    for tp in current:
        for t in _unwrap(tp):
            if isinstance(t, type) and issubclass(t, BaseModel):
                return t
    return None


_UNION_TAGS = {"str", "int", "float", "bool"}


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and (
        part in _UNION_TAGS or part[:1].isupper() or "[" in part
    )


def _data_path(data: Any, loc: tuple) -> tuple:
    """Drop the union-branch tags pydantic inserts into `loc` (e.g. 'str', 'list[...]')."""
    out: list = []
    node = data
    for part in loc:
        if _is_union_tag(part) and not (isinstance(node, dict) and part in node):
            continue
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, (dict, list)) and not isinstance(part, str):
            out.append(part)
            node = None
        elif node is None or not isinstance(node, (dict, list)):
            continue
        else:
            out.append(part)  # a key that is not there: extra or missing key
            node = None
    return tuple(out)


def _dotted(path: tuple) -> str:
    if len(path) > 1 and path[0] == "resources":
        path = path[1:]
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


_FRIENDLY = {
    "dict_type": "expected a mapping (key: value)",
    "model_type": "expected a mapping (key: value)",
    "list_type": "expected a list",
    "string_type": "expected a string",
}


def _message(err: dict, path: tuple) -> str:
    kind = err["type"]
    if kind in _FRIENDLY:
        return _FRIENDLY[kind]
    if kind == "string_pattern_mismatch":
        what = "a Python module path (like ml.training.train)" if path and path[-1] == "module" else \
            "a name of letters, digits, _ . and - "
        return f"{err.get('input')!r} is not {what.strip()}"
    return err["msg"].removeprefix("Value error, ")


def _model_diagnostics(doc: Located, exc: ValidationError) -> list[Diagnostic]:
    grouped: dict[tuple, list[dict]] = {}
    for err in exc.errors(include_url=False):
        grouped.setdefault(_data_path(doc.data, err["loc"]), []).append(err)
    out = []
    for path, errs in grouped.items():
        kinds = {e["type"] for e in errs}
        if kinds == {"extra_forbidden"}:
            key = path[-1]
            model = _model_at(path[:-1])
            choices = list(model.model_fields) if model else []
            where = f" in {_dotted(path[:-1])}" if path[:-1] else ""
            out.append(Diagnostic("error", f"unknown key {key!r}{where}{did_you_mean(str(key), choices)}", doc.loc(path)))
        elif kinds == {"missing"}:
            out.append(Diagnostic("error", f"{_dotted(path[:-1])}: missing required key {path[-1]!r}", doc.loc(path[:-1])))
        elif len(errs) > 1 and all(e["type"].endswith("_type") or e["type"].endswith("_parsing") for e in errs):
            wanted = sorted({e["type"].split("_")[0] for e in errs})
            out.append(Diagnostic("error", f"{_dotted(path)}: wrong type, expected {' or '.join(wanted)}", doc.loc(path)))
        else:
            out.append(Diagnostic("error", f"{_dotted(path)}: {_message(errs[0], path)}", doc.loc(path)))
    return out


# --- entry point ---------------------------------------------------------------------------


def load_bundle(
    root: Path,
    target: str | None = None,
    cli_vars: dict[str, str] | None = None,
    environ: dict[str, str] | None = None,
    user: str | None = None,
) -> tuple[ResolvedBundle | None, list[Diagnostic]]:
    """Resolve `root/bundle.yml` for `target`; returns (bundle or None, diagnostics)."""
    root = Path(root).resolve()
    environ = dict(os.environ if environ is None else environ)
    cli_vars = cli_vars or {}
    diags: list[Diagnostic] = []
    main, errs = load_yaml(root / BUNDLE_FILE, BUNDLE_FILE)
    diags.extend(errs)
    if main is None:
        return None, diags
    if not isinstance(main.data, dict):
        return None, diags + [Diagnostic("error", "bundle.yml must be a mapping", main.loc(()))]
    doc = Located(data=copy.deepcopy(main.data), locs=dict(main.locs), file=BUNDLE_FILE)
    if "bundle" not in doc.data:
        diags.append(Diagnostic("error", "bundle.yml needs a `bundle:` section with a `name`", doc.loc(())))
    _include(root, doc, diags)
    tname = _pick_target(doc, target, diags)
    if tname is None:
        return None, _sorted(diags)
    tcfg = doc.data["targets"][tname] or {}
    if not isinstance(tcfg, dict):
        tcfg = {}
    overrides = tcfg.get("resources") or {}
    if isinstance(overrides, dict) and overrides:
        doc.data["resources"] = _deep_merge(doc.data.get("resources") or {}, overrides)
        _graft(doc, doc, ("targets", tname, "resources"), ("resources",))

    mode = tcfg.get("mode", "development")
    user = user or current_user()
    git = git_info(root)
    bundle_sec = doc.data.get("bundle") if isinstance(doc.data.get("bundle"), dict) else {}
    name = str(bundle_sec.get("name", "bundle"))
    builtins = {
        "bundle.name": name,
        "bundle.target": tname,
        "bundle.mode": mode,
        "bundle.user": user,
        "bundle.git.commit": git.commit,
        "bundle.git.branch": git.branch or "",
    }
    vars_ = _resolve_vars(doc, tname, cli_vars, environ, diags)
    interp = _Interpolator(doc, diags, builtins, vars_)
    for section in ("resources", "targets"):
        if section in doc.data:
            doc.data[section] = interp.walk(doc.data[section], (section,), final=False)

    # Final names: development mode prefixes them so two people never collide.
    prefix = tcfg.get("name_prefix")
    if prefix is None:
        prefix = f"dev_{user}_" if mode == "development" else ""
    resources = doc.data.get("resources") if isinstance(doc.data.get("resources"), dict) else {}
    for kind in NAMED_KINDS:
        entries = resources.get(kind)
        if not isinstance(entries, dict):
            continue
        for key, entry in entries.items():
            if not isinstance(entry, dict):
                continue
            base = entry.get("name", key)
            if isinstance(base, str) and "${resources." in base:
                diags.append(Diagnostic("error", f"{kind}.{key}.name may not reference other resources", doc.loc(("resources", kind, key, "name"))))
                continue
            final = f"{prefix}{base}"
            entry["name"] = final
            interp.names[(kind, key)] = final
    doc.data["resources"] = interp.walk(resources, ("resources",), final=True)
    jobs_raw = doc.data["resources"].get("jobs") if isinstance(doc.data["resources"], dict) else None
    if mode == "development" and isinstance(jobs_raw, dict):
        for job in jobs_raw.values():
            if isinstance(job, dict) and isinstance(job.get("schedule"), dict):
                job["schedule"]["pause_status"] = "PAUSED"

    parsed: BundleFile | None = None
    try:
        parsed = BundleFile.model_validate(doc.data)
    except ValidationError as exc:
        diags.extend(_model_diagnostics(doc, exc))
    diags.extend(checks.semantic(doc, tname, root))
    for unused in sorted(vars_.declared - vars_.used):
        diags.append(Diagnostic("warning", f"variable {unused!r} is never used", doc.loc(("variables", unused))))
    diags = _sorted(diags)
    if parsed is None or any(d.severity == "error" for d in diags):
        return None, diags
    tmodel = parsed.targets[tname]
    resolved = ResolvedBundle(
        root=root,
        name=parsed.bundle.name if parsed.bundle else name,
        target=tname,
        target_cfg=tmodel,
        stack=tmodel.stack or tname,
        mode=tmodel.mode,
        user=user,
        git=git,
        variables=vars_.values,
        resources=parsed.resources,
        packages=parsed.bundle.artifact.packages if parsed.bundle else None,
        diagnostics=diags,
    )
    return resolved, diags


def _sorted(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen, out = set(), []
    for d in diags:
        if (d.severity, d.message, d.loc) not in seen:
            seen.add((d.severity, d.message, d.loc))
            out.append(d)
    return sorted(out, key=lambda d: (d.loc is None, d.loc or Loc("", 0)))
