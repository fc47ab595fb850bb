"""Checks that the generated client covers the whole OpenAPI document.

Usage: python check_generated.py SPEC PACKAGE_DIR
       python check_generated.py --explain SPEC

The first form fails (exit 1) when an operation has no generated module with `sync_detailed`,
or when a success response that has a body is not parsed by the module (the generator drops
responses it cannot type with only a warning).

The second, run by run.sh when generation fails, names the operations whose responses break
a rule of OpenAPI that the generator enforces (a Response Object must have `description`).
"""

import json
import pathlib
import re
import sys

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def explain(spec: dict) -> int:
    missing = []
    for path, item in spec["paths"].items():
        for method in METHODS:
            op = item.get(method)
            for status, response in (op or {}).get("responses", {}).items():
                if "$ref" not in response and "description" not in response:
                    missing.append(f"{op.get('operationId', '?')} ({method.upper()} {path}) {status}")
    for name, response in spec.get("components", {}).get("responses", {}).items():
        if "description" not in response:
            missing.append(f"components.responses.{name}")
    if missing:
        print(f"{len(missing)} responses have no `description`, which OpenAPI requires of every Response Object:")
        for m in missing:
            print(f"  {m}")
    return 1 if missing else 0


def main() -> int:
    if sys.argv[1] == "--explain":
        return explain(json.loads(pathlib.Path(sys.argv[2]).read_text(encoding="utf-8")))
    spec_path, package_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    modules = {p.stem: p for p in (package_dir / "api").glob("*/*.py") if p.stem != "__init__"}
    problems = []
    operations = 0
    for path, item in spec["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            operations += 1
            where = f"{method.upper()} {path}"
            op_id = op.get("operationId")
            if not op_id:
                problems.append(f"{where}: no operationId")
                continue
            module = modules.get(op_id)
            if module is None:
                problems.append(f"{where}: no generated module for operationId {op_id}")
                continue
            source = module.read_text(encoding="utf-8")
            if "def sync_detailed(" not in source:
                problems.append(f"{where}: {module.name} has no sync_detailed")
            for status, response in op.get("responses", {}).items():
                if not status.startswith("2"):
                    continue
                if "$ref" in response:
                    name = response["$ref"].rsplit("/", 1)[-1]
                    response = spec["components"]["responses"][name]
                if not response.get("content"):
                    continue
                if not re.search(rf"response\.status_code == {status}\b", source):
                    problems.append(f"{where}: the {status} response is not parsed in {module.name}")
    for p in problems:
        print(f"MISSING: {p}")
    print(f"{operations} operations in the document, {len(modules)} generated modules, {len(problems)} problems")
    return 1 if problems or operations == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
