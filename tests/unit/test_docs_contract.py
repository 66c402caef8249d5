"""The docs say what the code does: every fact is read from the code, then looked up in the doc.

Outside clients are written from docs/ alone, so a route, a field, an error code, a message type or a
limit that the code has and the docs do not (or the other way round) fails here, with a message that
names the doc, the section and what is missing. Facts come from the app's OpenAPI document, the
pydantic message models of driver_app/protocol.py, the domain error classes and the constants in
api/ and transit/; the docs are read as text (markdown tables, backticked names) and YAML.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import re
from functools import cache
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DASH = "\u2013"  # the docs write ranges with an en dash (1 to 64)


# ------------------------------------------------------------------------------ reading the docs


def doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text under a markdown heading (its title starts with ``heading``), up to the next heading
    of the same or a higher level."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(#+)\s+(.*)$", line)
        if m and m.group(2).strip().startswith(heading):
            level = len(m.group(1))
            out = []
            for nxt in lines[i + 1:]:
                n = re.match(r"^(#+)\s", nxt)
                if n and len(n.group(1)) <= level:
                    break
                out.append(nxt)
            return "\n".join(out)
    raise AssertionError(f"no heading starting with {heading!r}")


def rows(text: str) -> list[list[str]]:
    """The body rows of every markdown table in ``text`` (header and separator rows left out)."""
    out: list[list[str]] = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|") and s.endswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", s[1:-1])]
            if all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                out.pop()  # the line before was the header
            else:
                out.append(cells)
    return out


def flat(text: str) -> str:
    """Whitespace as single spaces (a phrase may wrap across lines)."""
    return " ".join(text.split())


def ticked(text: str) -> set[str]:
    """Every `name` in backticks, also with a trailing ``[]`` or ``?`` dropped (``visits[]``, ``t?``)."""
    names = set()
    for t in re.findall(r"`([^`\n]+)`", text):
        names.add(t)
        names.add(t.rstrip("?").removesuffix("[]"))
    return names


def row_for(text: str, first_cell: str, where: str) -> list[str]:
    """The table row whose first cell holds ``first_cell`` in backticks (or is exactly it)."""
    for r in rows(text):
        if first_cell in ticked(r[0]) or r[0] == first_cell:
            return r
    raise AssertionError(f"{where}: no table row for {first_cell!r}")


SECONDS = {"s": 1, "min": 60, "minutes": 60, "minute": 60, "h": 3600, "hour": 3600, "hours": 3600,
           "m": 1, "metres": 1}


def figures(text: str, name: str) -> list[float]:
    """Every number a doc gives for the named value: ``name` (180 s)``, ``name (900 s = 15 min)`` or
    ``3 min (`name`)``, in seconds (or metres for ``m``)."""
    n = re.escape(name)
    found = []
    for m in re.finditer(rf"`?{n}`?\**\s*\((\d+(?:\.\d+)?)\s*(s|min|minutes|h|hours|m|metres)?\b", text):
        found.append(float(m.group(1)) * SECONDS.get(m.group(2) or "s", 1))
    for m in re.finditer(rf"(\d+(?:\.\d+)?)\s*(s|min|minutes|h|hours|m|metres)\s*\(`{n}`", text):
        found.append(float(m.group(1)) * SECONDS[m.group(2)])
    return found


# ------------------------------------------------------------------------------ facts from the code


@cache
def openapi() -> dict[str, Any]:
    from api.app import create_app
    from transit.settings import Settings

    return create_app(Settings()).openapi()


@cache
def app_routes() -> list[Any]:
    """Every route of the app, the routers' routes included (FastAPI keeps an included router as one
    entry of ``app.routes``)."""
    from api.app import create_app
    from transit.settings import Settings

    found: list[Any] = []

    def add(routes: list[Any], prefix: str) -> None:
        for r in routes:
            inner = getattr(r, "original_router", None)
            if inner is not None:
                add(list(inner.routes), prefix + r.include_context.prefix)
            else:
                assert not prefix, f"a router included with a prefix ({prefix}): teach app_routes() to add it"
                found.append(r)

    add(list(create_app(Settings()).routes), "")
    return found


def operations() -> list[dict[str, Any]]:
    found = []
    for path, ops in openapi()["paths"].items():
        for method, op in ops.items():
            body = "—"
            rb = op.get("requestBody")
            if rb:
                schema = rb["content"].get("application/json", {}).get("schema", {})
                refs = [s["$ref"] for s in [schema, *schema.get("anyOf", [])] if "$ref" in s]
                name = refs[0].rsplit("/", 1)[1] if refs else next(iter(rb["content"]))
                body = f"`{name}`" + ("" if rb.get("required") else " (optional)")
            found.append({
                "method": method.upper(), "path": path, "id": op["operationId"],
                "success": ", ".join(c for c in op["responses"] if c.startswith("2")),
                "token": "yes" if op.get("security") else "no", "body": body,
            })
    return found


def walk(package: str) -> None:
    """Import every module of a package, so every domain error class is defined."""
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)


def domain_errors() -> list[type]:
    from transit.errors import DomainError

    for package in ("transit", "api"):
        walk(package)
    found: list[type] = []
    todo = [DomainError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


def source(relative: str) -> ast.Module:
    return ast.parse((ROOT / relative).read_text(encoding="utf-8"))


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def edge_errors() -> dict[str, set[int | None]]:
    """Codes the API answers itself (not domain errors): ``body("Code", ...)`` inside a
    ``JSONResponse(..., status_code=N)`` and ``_answer(send, N, "Code", ...)`` of api/."""
    found: dict[str, set[int | None]] = {}
    for rel in ("api/errors.py", "api/limits.py", "api/app.py"):
        for node in ast.walk(source(rel)):
            if not isinstance(node, ast.Call):
                continue
            fn = _name(node.func)
            if fn == "_answer" and len(node.args) >= 3 and isinstance(node.args[2], ast.Constant):
                status = node.args[1].value if isinstance(node.args[1], ast.Constant) else None
                found.setdefault(node.args[2].value, set()).add(status)
            if fn == "JSONResponse" and node.args and isinstance(node.args[0], ast.Call) \
                    and _name(node.args[0].func) == "body" and isinstance(node.args[0].args[0], ast.Constant):
                kw = {k.arg: k.value for k in node.keywords}
                status = kw["status_code"].value if isinstance(kw.get("status_code"), ast.Constant) else None
                found.setdefault(node.args[0].args[0].value, set()).add(status)
    return found


def raised_names(tree: ast.AST) -> set[str]:
    """Class names raised in a piece of code (``raise X(...)``, ``raise errors.X()``)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            out.add(_name(exc))
    return out


def function(tree: ast.Module, name: str) -> ast.AST:
    return next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name)


def event_rejection_codes() -> set[str]:
    """Codes a driver event can be rejected with: Operations catches every domain error raised while
    it applies an event (transit/operations.py, the handover check, the booking's state machine and
    the plan writer it calls)."""
    from transit import operations
    from transit.errors import DomainError

    names = raised_names(source("transit/operations.py"))
    names |= raised_names(function(source("transit/deliveries.py"), "check_handover"))
    names |= raised_names(source("transit/booking.py"))
    names |= raised_names(function(source("transit/handlers.py"), "apply_route"))
    classes = {c.__name__ for c in domain_errors()}
    defined = {n for n, c in vars(operations).items() if inspect.isclass(c) and issubclass(c, DomainError)
               and c.__module__ == operations.__name__}
    return (names & classes) | defined


def ws_error_codes() -> set[str]:
    """Codes of the live channels' ``error`` frames: ``error("Code", ...)`` and
    ``domain_error(errors.X(...))`` in the websocket routers."""
    codes = set()
    for rel in ("api/routers/ws_common.py", "api/routers/driver_ws.py", "api/routers/rider_ws.py",
                "api/routers/stores.py"):
        for node in ast.walk(source(rel)):
            if isinstance(node, ast.Call) and _name(node.func) == "error" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                codes.add(node.args[0].value)
            if isinstance(node, ast.Call) and _name(node.func) == "domain_error" and node.args \
                    and isinstance(node.args[0], ast.Call):
                codes.add(_name(node.args[0].func))
    return codes


# ------------------------------------------------------------------------------ the REST API


def test_every_operation_is_in_the_index_of_api_md() -> None:
    index = section(doc("api.md"), "Operation index")
    documented = {}
    for r in rows(index):
        if len(r) >= 6:
            documented[(r[0].strip("`"), r[1].strip("`"))] = r
    problems = []
    code = operations()
    for op in code:
        key = (op["method"], op["path"])
        r = documented.get(key)
        expected = [f"`{op['method']}`", f"`{op['path']}`", f"`{op['id']}`", op["success"], op["token"], op["body"]]
        if r is None:
            problems.append(f"missing row: | {' | '.join(expected)} |")
        elif r[:6] != expected:
            problems.append(f"row for {key[0]} {key[1]} says | {' | '.join(r[:6])} |, the code: | {' | '.join(expected)} |")
    for key in set(documented) - {(o["method"], o["path"]) for o in code}:
        problems.append(f"row for {key[0]} {key[1]}: no such operation in the OpenAPI document")
    assert not problems, "docs/api.md, section 'Operation index':\n" + "\n".join(problems)


def test_every_route_outside_the_openapi_document_is_in_api_md() -> None:
    """/healthz, /readyz, the pages and the websockets are not in the OpenAPI document."""
    from fastapi.routing import APIRoute, APIWebSocketRoute

    text = doc("api.md")
    missing = []
    for route in app_routes():
        if isinstance(route, APIWebSocketRoute):
            if route.path not in ticked(text) and f"WS {route.path}" not in ticked(text):
                missing.append(f"WS {route.path}")
        elif (isinstance(route, APIRoute) and not route.include_in_schema
              and route.path.startswith(("/healthz", "/readyz")) and f"GET {route.path}" not in ticked(text)):
            missing.append(f"GET {route.path}")
    assert not missing, f"docs/api.md does not name (in backticks): {missing}"


def render_type(s: dict[str, Any]) -> str:
    if "$ref" in s:
        return f"`{s['$ref'].rsplit('/', 1)[1]}`"
    if "anyOf" in s:
        parts = [render_type(x) for x in s["anyOf"] if x.get("type") != "null"]
        nullable = any(x.get("type") == "null" for x in s["anyOf"])
        return " or ".join(parts) + (" or null" if nullable else "")
    if "const" in s:
        return f"`{json.dumps(s['const'], ensure_ascii=False)}`"
    if "enum" in s:
        return "one of " + ", ".join(f"`{v}`" for v in s["enum"])
    t = s.get("type", "any")
    if t == "array":
        return f"array of {render_type(s.get('items', {}))}"
    if t == "string" and s.get("format") in ("date-time", "date"):
        return s["format"]
    return str(t)


def render_limits(s: dict[str, Any]) -> str:
    parts = []
    for x in [s, *s.get("anyOf", [])]:
        if "minLength" in x or "maxLength" in x:
            parts.append(f"{x.get('minLength', 0)}{DASH}{x['maxLength']} chars" if "maxLength" in x
                         else f"≥ {x['minLength']} chars")
        for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
            if key in x:
                parts.append(f"{sign} {x[key]:g}")
        if "maxItems" in x:
            parts.append(f"≤ {x['maxItems']} items")
        if "pattern" in x:
            parts.append(pattern_text(x["pattern"]))
    return ", ".join(parts) or "—"


def pattern_text(pattern: str) -> str:
    from api.schemas import ID_PATTERN, TEXT_PATTERN

    if pattern == ID_PATTERN:
        return "id characters"
    if pattern == TEXT_PATTERN:
        return "printable text"
    return "pattern `" + pattern.replace("|", "\\|") + "`"


def schema_rows(name: str) -> list[list[str]]:
    """| field | type | required | limits | (and the code's description, not compared) of one schema.
    In answers every field is always there (FastAPI sends the whole response model), so a schema
    only answered says ``always``; ``required`` / ``optional`` / ``default`` are for requests."""
    schema = openapi()["components"]["schemas"][name]
    required = set(schema.get("required", []))
    request = name in documented_schemas("requestBody") or name in documented_schemas("parameters")
    out = []
    for field, s in schema.get("properties", {}).items():
        if not request:
            need = "always"
        elif field in required:
            need = "required"
        elif "default" in s:
            need = f"default `{json.dumps(s['default'], ensure_ascii=False)}`"
        else:
            need = "optional"
        text = (s.get("description") or "").replace("|", "\\|").replace("\n", " ")
        out.append([f"`{field}`", render_type(s), need, render_limits(s), text])
    return out


@cache
def documented_schemas(part: str = "") -> list[str]:
    """The request and response bodies of the /api/v1 operations (and every schema they use);
    with ``part`` (``requestBody``, ``responses``) only those reached from that part."""
    doc_ = openapi()
    seen: list[str] = []

    def refs(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].rsplit("/", 1)[1]
                if name not in seen:
                    seen.append(name)
                    refs(doc_["components"]["schemas"][name])
            for v in node.values():
                refs(v)
        elif isinstance(node, list):
            for v in node:
                refs(v)

    for path, ops in doc_["paths"].items():
        if path.startswith("/api/v1/"):
            for op in ops.values():
                refs(op.get(part) if part else op)
    return sorted(seen)


def render_schemas() -> str:
    """The 'Bodies' section of docs/api.md as the code has it (print it to update the doc)."""
    out = []
    for name in documented_schemas():
        out += [f"### `{name}`", "", "| field | type | required | limits | meaning |", "|---|---|---|---|---|"]
        out += ["| " + " | ".join(r) + " |" for r in schema_rows(name)]
        out.append("")
    return "\n".join(out)


def test_every_body_schema_is_in_api_md_with_its_fields() -> None:
    bodies = section(doc("api.md"), "Bodies")
    problems = []
    for name in documented_schemas():
        try:
            text = section(bodies, f"`{name}`")
        except AssertionError:
            table = "\n".join("| " + " | ".join(r) + " |" for r in schema_rows(name))
            problems.append(f"no '### `{name}`' table; add:\n### `{name}`\n\n| field | type | required | limits | meaning |"
                            f"\n|---|---|---|---|---|\n{table}\n")
            continue
        have = {r[0]: r for r in rows(text)}
        want = {r[0]: r for r in schema_rows(name)}
        for field, r in want.items():
            if field not in have:
                problems.append(f"`{name}`: missing row | {' | '.join(r[:4])} |")
            elif have[field][:4] != r[:4]:
                problems.append(f"`{name}`: row says | {' | '.join(have[field][:4])} |, the code: | {' | '.join(r[:4])} |")
        for field in set(have) - set(want):
            problems.append(f"`{name}`: field {field} is not in the code")
    assert not problems, "docs/api.md, section 'Bodies' (run render_schemas() in this test module):\n" + "\n".join(problems)


def test_every_error_code_is_in_api_md_with_its_status() -> None:
    from api.errors import STATUS
    from transit import operations

    table = {r[0]: ticked(r[1]) for r in rows(section(doc("api.md"), "Errors")) if r[0].isdigit()}
    problems = []
    for cls in domain_errors():
        if cls.__module__ == operations.__name__:
            continue  # driver events only: docs/driver-protocol.md (the next test)
        status = str(STATUS.get(cls.kind, 400))
        if cls.__name__ not in table.get(status, set()):
            problems.append(f"`{cls.__name__}` ({cls.__module__}, kind {cls.kind}) in the {status} row")
    for code, statuses in edge_errors().items():
        for status in statuses:
            if status is None:
                if not any(code in codes for codes in table.values()):
                    problems.append(f"`{code}` in some row")
            elif code not in table.get(str(status), set()):
                problems.append(f"`{code}` in the {status} row")
    for status in ("404", "405"):  # Starlette's own 404 (no route) and 405 (wrong method)
        if "HTTPError" not in table.get(status, set()):
            problems.append(f"`HTTPError` in the {status} row")
    assert not problems, "docs/api.md, section 'Errors', table 'status | codes' lacks:\n" + "\n".join(problems)


def test_limits_in_api_md_are_the_constants() -> None:
    from api import deps, errors, limits
    from api.routers import bookings, vehicles
    from transit.settings import Settings

    text = doc("api.md")
    table = section(text, "Limits")
    body = row_for(table, "request body", "docs/api.md, Limits")
    headers = row_for(table, "request headers", "docs/api.md, Limits")
    frame = row_for(table, "websocket frame (every channel)", "docs/api.md, Limits")
    problems = []
    for r, figure in ((body, f"{limits.MAX_BODY_BYTES // 1024} KiB"),
                      (headers, f"{limits.MAX_HEADERS} headers"), (headers, f"{limits.MAX_HEADER_BYTES // 1024} KiB"),
                      (frame, f"{limits.MAX_WS_MESSAGE_BYTES // 1024} KiB")):
        if figure not in r[1]:
            problems.append(f"row {r[0]!r} should say {figure!r}, it says {r[1]!r}")
    for figure in (f"`Retry-After: {errors.RETRY_AFTER_S}`", f"`retry_after_s: {errors.RETRY_AFTER_S}`"):
        if figure not in flat(table):
            problems.append(f"the 503 paragraph should say {figure}")
    ready = re.search(r'"Retry-After": "(\d+)"', (ROOT / "api/app.py").read_text()).group(1)  # type: ignore[union-attr]
    health = section(text, "Health and readiness")
    for figure in (f"`Retry-After: {ready}`", f"gives up after {api_ready_timeout():g} s"):
        if figure not in flat(health):
            problems.append(f"'Health and readiness' should say {figure!r}")
    intro = text.split("\n## ", 1)[0]
    ttl = Settings.model_fields["token_ttl_days"].default
    for figure in (f"expire {ttl} days", f"within {deps.ACTOR_TTL_S:g} s"):
        if figure not in flat(intro):
            problems.append(f"the introduction should say {figure!r}")
    params = {p["name"]: p["schema"] for op in openapi()["paths"]["/api/v1/bookings"].values()
              if op["operationId"] == "list_bookings" for p in op["parameters"]}
    assert params["limit"]["maximum"] == bookings.PAGE_MAX
    page = f"`limit` 1{DASH}{params['limit']['maximum']} (default {params['limit']['default']})"
    if page not in flat(section(text, "The operators' search")):
        problems.append(f"'The operators' search' should say {page}")
    hour = vehicles.APPROACHING_S
    soon = "within the next hour" if hour == 3600 else f"within the next {hour // 60} min"
    if soon not in row_for(intro, "GET /api/v1/stops/{stop_id}/approaching", "docs/api.md, the first table")[-1]:
        problems.append(f"the approaching row should say {soon!r}")
    assert not problems, "docs/api.md:\n" + "\n".join(problems)


def api_ready_timeout() -> float:
    from api import app

    return app.READY_TIMEOUT_S


def rate(spec: str) -> str:
    from limits import parse

    item = parse(spec)
    unit = item.GRANULARITY.name
    return f"{item.amount} per {unit}" if item.multiples == 1 else f"{item.amount} per {item.multiples} {unit}s"


def test_rate_limits_in_api_md_are_the_defaults() -> None:
    from transit.ratelimit import DEFAULT_LIMITS

    table = section(doc("api.md"), "Limits")
    problems = []
    documented = {r[0].strip("`") for r in rows(table) if r[0].startswith("`") and ":" in r[0]}
    for name, spec in DEFAULT_LIMITS.items():
        try:
            r = row_for(table, name, "docs/api.md, Limits")
        except AssertionError as e:
            problems.append(str(e))
            continue
        if r[1] != rate(spec):
            problems.append(f"`{name}`: the doc says {r[1]!r}, the code {rate(spec)!r} ({spec})")
    for name in documented - set(DEFAULT_LIMITS):
        problems.append(f"`{name}` is not a rate limit of transit/ratelimit.py")
    assert not problems, "docs/api.md, section 'Limits', rate limits table:\n" + "\n".join(problems)


def duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        h = seconds // 3600
        return f"{h} hour" + ("s" if h > 1 else "")
    if seconds % 60 == 0:
        m = seconds // 60
        return f"{m} minute" + ("s" if m > 1 else "")
    return f"{seconds} s"


def test_sign_in_and_family_rules_in_api_md_are_the_constants() -> None:
    from transit import riders

    table = section(doc("api.md"), "Riders, sign-in and family")
    want = {
        "a sign-in code works for": duration(riders.CODE_TTL_S),
        "between two codes to one phone": duration(riders.CODE_GAP_S),
        "codes to one phone per hour": str(riders.CODES_PER_HOUR),
        "wrong codes that lock the phone": f"{riders.MAX_WRONG} within {duration(riders.LOCK_S)}",
        "the lock lasts": duration(riders.LOCK_S),
        "a family consent code works for": duration(riders.FAMILY_CODE_TTL_S),
        "wrong tries of one consent code": str(riders.MAX_WRONG),
        "invitations per rider per hour": str(riders.CODES_PER_HOUR),
        "a LINE link code works for": duration(riders.LINE_CODE_TTL_S),
        "`near_minutes` choices": ", ".join(map(str, riders.NEAR_MINUTES)),
    }
    have = {r[0]: r[1] for r in rows(table)}
    problems = [f"row {k!r}: the doc says {have.get(k)!r}, the code {v!r}" for k, v in want.items() if have.get(k) != v]
    assert not problems, "docs/api.md, section 'Riders, sign-in and family', rules table:\n" + "\n".join(problems)


# ------------------------------------------------------------------------------ the live channels


def channel_models() -> dict[str, dict[str, list[type[BaseModel]]]]:
    """Per channel, the models the server sends (subscribe) and takes (publish)."""
    from api.routers.stores import StoreOrdersMessage
    from driver_app import protocol as p

    def members(union: Any) -> list[type[BaseModel]]:
        return list(get_args(get_args(union)[0]))

    watcher_in = [p.TabletHello, p.Ping, p.Pong]  # rider_ws._listen: hello, ping, pong; else NotAllowed
    return {
        "/ws/driver": {"subscribe": members(p.ServerToTablet), "publish": members(p.TabletMessage)},
        "/ws/bookings/{booking_id}": {"subscribe": members(p.RiderServerMessage), "publish": watcher_in},
        "/ws/operator": {"subscribe": members(p.OperatorServerMessage), "publish": watcher_in},
        # stores.store_channel: the orders, and what _listen and the pinger send
        "/ws/store": {"subscribe": [StoreOrdersMessage, p.ErrorMessage, p.Ping, p.Pong], "publish": watcher_in},
    }


def type_of(model: type[BaseModel]) -> str:
    return model.model_fields["type"].default


def incoming(model: type[BaseModel]) -> bool:
    from driver_app import protocol as p

    return model in get_args(get_args(p.TabletMessage)[0]) and model not in (p.Ping, p.Pong)


@cache
def asyncapi() -> dict[str, Any]:
    return yaml.safe_load(doc("asyncapi.yaml"))


def resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        path = node["$ref"].removeprefix("#/").split("/")
        target: Any = root
        for part in path:
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def flatten(payload: dict[str, Any], root: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Properties and required names of an object schema, through allOf and $ref."""
    payload = resolve(payload, root)
    props = dict(payload.get("properties", {}))
    required = set(payload.get("required", []))
    for part in payload.get("allOf", []):
        p_, r_ = flatten(part, root)
        props.update(p_)
        required |= r_
    return props, required


def kinds(s: dict[str, Any], root: dict[str, Any]) -> frozenset[str]:
    """The JSON types a schema allows (an integer counts as a number only where it says number)."""
    s = resolve(s, root)
    out: set[str] = set()
    for key in ("anyOf", "oneOf"):
        for x in s.get(key, []):
            out |= kinds(x, root)
    for x in s.get("allOf", []):
        out |= kinds(x, root)
    t = s.get("type")
    if isinstance(t, list):
        out |= set(t)
    elif isinstance(t, str):
        out.add(t)
    if "const" in s and not t:
        out.add({str: "string", int: "integer", bool: "boolean"}.get(type(s["const"]), "any"))
    if "enum" in s and not t:
        out |= {{str: "string", int: "integer"}.get(type(v), "any") for v in s["enum"]}
    return frozenset(out)


def values(s: dict[str, Any], root: dict[str, Any]) -> frozenset[Any] | None:
    """The values a Literal / enum field allows, if it is one."""
    s = resolve(s, root)
    found: set[Any] = set()
    for x in [s, *s.get("anyOf", []), *s.get("oneOf", [])]:
        x = resolve(x, root)
        if "const" in x:
            found.add(x["const"])
        found |= set(x.get("enum", []))
    return frozenset(found) if found else None


LIMIT_KEYS = ("minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
              "minItems", "maxItems")


def limits_of(s: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    s = resolve(s, root)
    out = {}
    for x in [s, *s.get("anyOf", []), *s.get("oneOf", [])]:
        x = resolve(x, root)
        out.update({k: x[k] for k in LIMIT_KEYS if k in x})
    return out


def compare_object(what: str, model: type[BaseModel], props: dict[str, Any], required: set[str],
                   root: dict[str, Any], *, sent_by_server: bool) -> list[str]:
    """The model's fields against a documented object schema: names, required, types, values, limits."""
    schema = model.model_json_schema(mode="validation" if not sent_by_server else "serialization")
    mine = schema.get("properties", {})
    # A server message always carries every field (model_dump_json, nothing left out); a device's
    # message needs its required fields and its type (the union's discriminator).
    want_required = set(mine) if sent_by_server else set(schema.get("required", [])) | ({"type"} & set(mine))
    problems = []
    for name in sorted(set(mine) - set(props)):
        problems.append(f"{what}: field `{name}` missing")
    for name in sorted(set(props) - set(mine)):
        problems.append(f"{what}: field `{name}` is not in {model.__name__}")
    if required != want_required:
        problems.append(f"{what}: required should be {sorted(want_required)}, the doc has {sorted(required)}")
    for name in sorted(set(mine) & set(props)):
        a, b = kinds(mine[name], schema), kinds(props[name], root)
        if a != b and not (a <= {"integer", "number", "null"} and b == {"number"} | (a & {"null"})):
            problems.append(f"{what}.{name}: types {sorted(b)} in the doc, {sorted(a)} in {model.__name__}")
        va = values(mine[name], schema)
        if va is not None and va != values(props[name], root):
            problems.append(f"{what}.{name}: values should be {sorted(va)}")
        la, lb = limits_of(mine[name], schema), limits_of(props[name], root)
        if not sent_by_server and la != lb:
            problems.append(f"{what}.{name}: limits should be {la}, the doc has {lb}")
    return problems


def test_asyncapi_channels_carry_the_protocol_messages() -> None:
    spec = asyncapi()
    problems = []
    for channel, directions in channel_models().items():
        if channel not in spec["channels"]:
            problems.append(f"channel {channel} missing")
            continue
        for direction, models in directions.items():
            op = spec["channels"][channel].get(direction)
            refs = [m["$ref"] for m in (op or {}).get("message", {}).get("oneOf", [])]
            documented = {}
            for ref in refs:
                msg = resolve({"$ref": ref}, spec)
                props, _ = flatten(msg["payload"], spec)
                documented[props.get("type", {}).get("const")] = ref
            want = {type_of(m) for m in models}
            for t in sorted(want - set(documented)):
                problems.append(f"{channel} {direction}: message type {t!r} missing")
            for t in sorted(set(documented) - want):
                problems.append(f"{channel} {direction}: message type {t!r} ({documented[t]}) is not sent/taken there")
    from fastapi.routing import APIWebSocketRoute

    for route in app_routes():
        if isinstance(route, APIWebSocketRoute) and route.path not in spec["channels"]:
            problems.append(f"channel {route.path} (a websocket route of the app) missing")
    assert not problems, "docs/asyncapi.yaml, channels:\n" + "\n".join(problems)


def test_asyncapi_messages_have_the_models_fields() -> None:
    from driver_app import protocol as p

    spec = asyncapi()
    messages = spec["components"]["messages"]
    by_type: dict[tuple[str, bool], tuple[str, dict[str, Any], set[str]]] = {}
    for name, msg in messages.items():
        props, required = flatten(msg["payload"], spec)
        t = props.get("type", {}).get("const")
        by_type[(t, name.startswith(("Tablet", "Position", "Arrived", "Boarded", "NoShow", "Dropped",
                                     "Parcel", "Break", "Resync")))] = (name, props, required)
    problems = []
    seen: set[type[BaseModel]] = set()
    for directions in channel_models().values():
        for direction, models in directions.items():
            for model in models:
                if model in seen:
                    continue
                seen.add(model)
                server = direction == "subscribe"
                key = (type_of(model), not server and model not in (p.Ping, p.Pong))
                if model in (p.Ping, p.Pong):
                    key = (type_of(model), False)
                if key not in by_type:
                    problems.append(f"no message with type {type_of(model)!r} ({model.__name__})")
                    continue
                name, props, required = by_type[key]
                problems += compare_object(f"messages.{name}", model, props, required, spec,
                                           sent_by_server=server or model in (p.Ping, p.Pong))
    visit = spec["components"]["schemas"]["Visit"]
    problems += compare_object("schemas.Visit", p.VisitOut, visit["properties"], set(visit.get("required", [])),
                               spec, sent_by_server=True)
    eta = messages["Eta"]["payload"]["properties"]["etas"]["items"]
    problems += compare_object("messages.Eta.etas[]", p.VisitEta, eta["properties"], set(eta.get("required", [])),
                               spec, sent_by_server=True)
    assert not problems, "docs/asyncapi.yaml, components:\n" + "\n".join(problems)


def test_driver_protocol_md_tables_list_every_message_and_field() -> None:
    from driver_app import protocol as p

    text = doc("driver-protocol.md")
    problems = []
    out_table = section(text, "Server → tablet")
    for model in channel_models()["/ws/driver"]["subscribe"]:
        t = type_of(model)
        try:
            r = row_for(out_table, t, "")
        except AssertionError:
            problems.append(f"'Server → tablet': no row for `{t}`")
            continue
        names = ticked(" ".join(r))
        for field in model.model_fields:
            if field != "type" and field not in names:
                problems.append(f"'Server → tablet', row `{t}`: field `{field}` missing")
    visits = next(par for par in out_table.split("\n\n") if par.startswith("A visit (`visits[]`)"))
    for field in p.VisitOut.model_fields:
        if field not in ticked(visits):
            problems.append(f"'Server → tablet', the visit paragraph: field `{field}` missing")
    eta_row = " ".join(row_for(out_table, "eta", "driver-protocol.md"))
    for field in p.VisitEta.model_fields:
        if field not in ticked(eta_row):
            problems.append(f"'Server → tablet', row `eta`: `etas[]` field `{field}` missing")
    in_table = section(text, "Tablet → server")
    for common in ("client_event_id", "at"):
        if common not in ticked(in_table.split("|", 1)[0]):
            problems.append(f"'Tablet → server': the paragraph above the table should explain `{common}`")
    for model in channel_models()["/ws/driver"]["publish"]:
        t = type_of(model)
        try:
            r = row_for(in_table, t, "")
        except AssertionError:
            problems.append(f"'Tablet → server': no row for `{t}`")
            continue
        names = ticked(" ".join(r[:2]))
        for field in model.model_fields:
            if field not in ("type", "client_event_id", "at") and field not in names:
                problems.append(f"'Tablet → server', row `{t}`: field `{field}` missing")
    types = [r[0] for r in rows(in_table)]
    for t in {x for x in types if types.count(x) > 1}:
        problems.append(f"'Tablet → server': {t} has more than one row")
    others = section(text, "Other live channels")
    for channel in ("/ws/bookings/{booking_id}", "/ws/operator", "/ws/store"):
        for model in channel_models()[channel]["subscribe"]:
            t = type_of(model)
            if t in ("error", "ping", "pong") or model in channel_models()["/ws/driver"]["subscribe"]:
                continue
            try:
                r = row_for(others, t, "")
            except AssertionError:
                problems.append(f"'Other live channels': no row for `{t}`")
                continue
            if f"`{channel}`" not in r[1]:
                problems.append(f"'Other live channels', row `{t}`: channel `{channel}` missing")
            for field in model.model_fields:
                if field != "type" and field not in ticked(r[2]):
                    problems.append(f"'Other live channels', row `{t}`: field `{field}` missing")
    assert not problems, "docs/driver-protocol.md:\n" + "\n".join(problems)


def test_driver_protocol_md_lists_every_rejection_and_error_code() -> None:
    text = doc("driver-protocol.md")
    rejections = {r[0].strip("`") for r in rows(section(text, "Rejection codes"))}
    problems = []
    for code in sorted(event_rejection_codes() - rejections):
        problems.append(f"'Rejection codes': `{code}` (a driver event can be rejected with it) missing")
    for code in sorted(rejections - event_rejection_codes()):
        problems.append(f"'Rejection codes': `{code}` is not a code a driver event can be rejected with")
    error_row = " ".join(row_for(section(text, "Server → tablet"), "error", "driver-protocol.md"))
    for code in sorted(ws_error_codes() - ticked(error_row)):
        problems.append(f"'Server → tablet', row `error`: code `{code}` missing")
    assert not problems, "docs/driver-protocol.md:\n" + "\n".join(problems)


def test_live_channel_limits_and_close_codes_are_the_constants() -> None:
    from api import limits, realtime
    from api.routers import ws_common
    from driver_app import protocol as p
    from transit.settings import Settings

    text = " ".join(doc("driver-protocol.md").split())  # a phrase may wrap across lines
    problems = []
    for name in ("CLOSE_UNAUTHORISED", "CLOSE_FORBIDDEN", "CLOSE_NOT_FOUND"):
        if f"close code {getattr(ws_common, name)}" not in text and f"close {getattr(ws_common, name)}" not in text:
            problems.append(f"close code {getattr(ws_common, name)} ({name}) is not named")
    closes = set()
    for rel in ("api/routers/ws_common.py", "api/realtime.py", "api/limits.py"):
        closes |= {int(c) for c in re.findall(r"(?:code=|\), |\"code\": )(1\d{3})\b", (ROOT / rel).read_text())}
    for c in sorted(closes):
        if f"close {c}" not in text and f"(code {c})" not in text:
            problems.append(f"close code {c} is not named")
    lines = doc("driver-protocol.md")
    if f"within {ws_common.AUTH_TIMEOUT_S} s" not in flat(section(lines, "Connecting")):
        problems.append(f"'Connecting': the hello must come within {ws_common.AUTH_TIMEOUT_S} s")
    if f"{limits.MAX_WS_MESSAGE_BYTES // 1024} KiB" not in row_for(section(lines, "Server → tablet"), "error", "")[2]:
        problems.append(f"row `error`: a frame over {limits.MAX_WS_MESSAGE_BYTES // 1024} KiB")
    queue = Settings.model_fields["ws_queue_size"].default
    if f"`OKUMA_WS_QUEUE_SIZE`, {queue} messages" not in flat(section(lines, "Slow tablets")):
        problems.append(f"'Slow tablets': `OKUMA_WS_QUEUE_SIZE`, {queue} messages")
    eta = row_for(section(lines, "Server → tablet"), "eta", "")[1]
    for figure in (f"every {realtime.Hub.ETA_REFRESH_S:g} s", f"older than {realtime.Hub.ETA_MAX_AGE_S} s"):
        if figure not in eta:
            problems.append(f"row `eta` should say {figure!r}")
    waits = flat(section(lines, "Timed visits and waits"))
    if f"more than {realtime.WAIT_SHOWN_S} s after `arrival_at`" not in waits:
        problems.append(f"'Timed visits and waits': more than {realtime.WAIT_SHOWN_S} s after `arrival_at`")
    found = figures(text, "heartbeat_s")
    if not found or set(found) != {p.HEARTBEAT_S}:
        problems.append(f"`heartbeat_s` is {p.HEARTBEAT_S} s, the doc says {found}")
    if int(re.search(r"protocol \(v(\d+)\)", text).group(1)) != p.PROTOCOL_VERSION:  # type: ignore[union-attr]
        problems.append(f"the title should say v{p.PROTOCOL_VERSION}")
    assert not problems, "docs/driver-protocol.md:\n" + "\n".join(problems)


RULE_NAMES = ("no_show_wait_s", "arrival_early_s", "arrival_near_m", "event_future_tolerance_s", "offer_ttl_s",
              "pickup_window_s", "max_wait_s", "chilled_max_out_of_store_s", "booking_horizon_days")


@pytest.mark.parametrize("name", ["driver-protocol.md", "driver-app.md", "asyncapi.yaml", "glossary.md", "api.md"])
def test_service_rule_figures_are_the_rules(name: str) -> None:
    rules = json.loads((ROOT / "data/okuma/rules.json").read_text())
    text = doc(name)
    problems = []
    for rule in RULE_NAMES:
        found = figures(text, rule)
        if any(f != rules[rule] for f in found):
            problems.append(f"`{rule}` is {rules[rule]} in data/okuma/rules.json; the doc says {found}")
    assert not problems, f"docs/{name}:\n" + "\n".join(problems)


def test_the_timing_rules_are_stated_with_their_figures() -> None:
    """Each rule a tablet must follow is stated at least once, with its figure."""
    rules = json.loads((ROOT / "data/okuma/rules.json").read_text())
    missing = []
    for name, wanted in (("driver-protocol.md", ("no_show_wait_s", "arrival_early_s", "arrival_near_m",
                                                  "event_future_tolerance_s")),
                         ("driver-app.md", ("no_show_wait_s", "arrival_early_s", "arrival_near_m")),
                         ("asyncapi.yaml", ("no_show_wait_s", "arrival_early_s", "arrival_near_m")),
                         ("glossary.md", ("offer_ttl_s",))):
        for rule in wanted:
            if not figures(doc(name), rule):
                missing.append(f"docs/{name}: `{rule}` ({rules[rule]}) is never given with its figure")
    assert not missing, "\n".join(missing)


def test_glossary_lists_the_booking_and_delivery_lives() -> None:
    from transit.booking import BookingStatus
    from transit.deliveries import STATUS_TEXT

    text = doc("glossary.md")
    booking = next(r for r in rows(text) if r[0] == "**booking**")
    problems = [f"**booking**: status `{s.value}` missing" for s in BookingStatus if s.value not in ticked(booking[1])]
    delivery = next(r for r in rows(text) if r[0] == "**delivery**")
    problems += [f"**delivery**: status `{s}` missing" for s in STATUS_TEXT if s not in ticked(delivery[1])]
    from routing.model import UnservedCause

    cause = next(r for r in rows(text) if r[0] == "**cause**")
    problems += [f"**cause**: `{c.value}` missing" for c in UnservedCause if c.value not in ticked(cause[1])]
    terms = [r[0] for r in rows(text)]
    problems += [f"{t} is defined twice" for t in sorted({t for t in terms if terms.count(t) > 1})]
    assert not problems, "docs/glossary.md:\n" + "\n".join(problems)


# ------------------------------------------------------------------------------ the driver app


def test_driver_app_md_lists_every_simulation_option_with_its_default() -> None:
    import dataclasses

    from driver_app.simulator import SimulationOptions

    text = flat(doc("driver-app.md"))
    para = next((p for p in text.split("`SimulationOptions` holds the parameters:")[1:2]), "").split(". ")[0]
    problems = []
    for f in dataclasses.fields(SimulationOptions):
        if f"`{f.name}`" not in para:
            problems.append(f"`{f.name}` missing")
            continue
        if isinstance(f.default, int | float) and not isinstance(f.default, bool):
            m = re.search(rf"`{f.name}` \((\d+(?:\.\d+)?)[,)]", para)
            if m is None or float(m.group(1)) != f.default:
                problems.append(f"`{f.name}` should be given as `{f.name}` ({f.default:g})")
    assert not problems, "docs/driver-app.md, the `SimulationOptions` sentence:\n" + "\n".join(problems)


def test_driver_app_md_names_the_tablet_files_and_the_client_api() -> None:
    from driver_app import client

    text = doc("driver-app.md")
    files = row_for(text, "driver_app/static/", "docs/driver-app.md, the file table")[1]
    problems = [f"the file table: `{f.name}` missing" for f in sorted((ROOT / "driver_app/static").iterdir())
                if f.is_file() and f"`{f.name}`" not in files]
    python_client = section(text, "The Python client")
    for name in re.findall(r"tablet\.(\w+)\(", python_client) + re.findall(r"`(\w+)\(\)`", python_client):
        if not hasattr(client.DriverClient, name):
            problems.append(f"'The Python client': DriverClient has no `{name}`")
    for name in re.findall(r"raises `(\w+)`|and `(\w+)`\s+for", flat(python_client)):
        for n in filter(None, name):
            if not hasattr(client, n):
                problems.append(f"'The Python client': driver_app.client has no `{n}`")
    assert not problems, "docs/driver-app.md:\n" + "\n".join(problems)


# ------------------------------------------------------------------------------ the examples


def model_named(name: str) -> type[BaseModel]:
    """The pydantic model behind a schema name of the OpenAPI document."""
    for module in ("api.schemas", *[f"api.routers.{m.name}" for m in pkgutil.iter_modules(
            importlib.import_module("api.routers").__path__)]):
        found = getattr(importlib.import_module(module), name, None)
        if inspect.isclass(found) and issubclass(found, BaseModel):
            return found
    raise AssertionError(f"no model named {name}")


def request_examples(text: str) -> list[tuple[str, str, str]]:
    """(method, path, JSON body) of every request written out in a fenced block of a doc."""
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^(POST|PATCH|PUT) (/\S+)\s*(\{.*\})?\s*(?:\(.*\))?$", line.strip())
            if not m:
                continue
            if m.group(3):
                found.append((m.group(1), m.group(2), m.group(3)))
                continue
            rest = [x for x in lines[i + 1:] if not re.match(r"^[A-Za-z-]+: ", x)]
            body = "\n".join(rest).split("\n\n")[0].strip()
            body = re.sub(r"\s+\(.*\)\s*$", "", body)
            if body.startswith("{"):
                found.append((m.group(1), m.group(2), body))
    return found


def test_the_request_examples_of_api_md_are_valid_bodies() -> None:
    import csv

    stops = {r["stop_id"] for r in csv.DictReader((ROOT / "data/okuma/stops.csv").open(encoding="utf-8"))}
    examples = request_examples(doc("api.md"))
    assert len(examples) >= 5, f"docs/api.md: only {len(examples)} request examples found"
    problems = []
    ops = {(o["method"], o["path"]): o for o in operations()}
    for method, path, body in examples:
        op = next((o for (m, tpl), o in ops.items() if m == method
                   and re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(tpl)), path)), None)
        if op is None:
            problems.append(f"{method} {path}: no such operation")
            continue
        if op["body"] == "—":
            problems.append(f"{method} {path}: the operation takes no body")
            continue
        model = model_named(op["body"].split("`")[1])
        try:
            data = json.loads(body)
            model.model_validate(data)
        except Exception as e:  # noqa: BLE001 - the message says what is wrong
            problems.append(f"{method} {path}: {body!r} is not a valid {model.__name__}: {e}")
            continue
        for key in re.findall(r'"(?:stop_id|origin_stop_id|destination_stop_id)":\s*"([^"]+)"', body):
            if key not in stops:
                problems.append(f"{method} {path}: stop {key!r} is not in data/okuma/stops.csv")
    assert not problems, "docs/api.md, request examples:\n" + "\n".join(problems)


def test_the_frames_of_the_driver_protocol_example_fit_the_models() -> None:
    from driver_app import protocol as p

    frames = re.findall(r"^([→←]) (\{.*\})$", section(doc("driver-protocol.md"), "Example"), re.M)
    assert len(frames) >= 6, "docs/driver-protocol.md, 'Example': no frames found"
    by_type = {type_of(m): m for m in channel_models()["/ws/driver"]["subscribe"]}
    problems = []
    for arrow, frame in frames:
        text = frame.replace("[…]", "[]").replace(",…}", "}").replace('"…', '"x').replace('…"', 'x"')
        try:
            data = json.loads(text)
        except ValueError as e:
            problems.append(f"{frame}: not JSON once the … are left out ({e})")
            continue
        if arrow == "→":
            try:
                p.parse_tablet(json.dumps(data))
            except Exception as e:  # noqa: BLE001
                problems.append(f"{frame}: not a valid tablet message: {e}")
        else:
            model = by_type.get(data.get("type"))
            if model is None:
                problems.append(f"{frame}: the server sends no {data.get('type')!r} to tablets")
                continue
            for key in set(data) - set(model.model_fields):
                problems.append(f"{frame}: `{key}` is not a field of {model.__name__}")
    assert not problems, "docs/driver-protocol.md, 'Example':\n" + "\n".join(problems)


# ------------------------------------------------------------------------------ README


def test_readme_lists_every_page_and_the_default_address() -> None:
    from fastapi.routing import APIRoute, APIWebSocketRoute
    from starlette.routing import Mount

    from transit.settings import Settings

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    host, port = Settings.model_fields["host"].default, Settings.model_fields["port"].default
    base = f"http://{host}:{port}"
    problems = []
    if f"listens on {host}:{port} unless" not in flat(text):
        problems.append(f"the server listens on {host}:{port} unless told otherwise")
    pages = [r.path for r in app_routes() if isinstance(r, APIRoute) and not r.include_in_schema
             and r.path not in ("/healthz", "/readyz", "/sw.js")]
    pages += [r.path + "/" for r in app_routes() if isinstance(r, Mount) and r.path == "/driver"]
    table = " ".join(" ".join(r) for r in rows(text))
    for page in pages:
        if f"{base}{page}" not in table.split() and f"{base}{page} " not in table + " ":
            problems.append(f"the page table: {base}{page} missing")
    for route in app_routes():
        if isinstance(route, APIWebSocketRoute) and route.path not in ticked(text):
            problems.append(f"websocket `{route.path}` not named")
    assert not problems, "README.md:\n" + "\n".join(problems)
