"""A small stand-in for a GitHub Actions runner, to run the published example workflows' steps.

Each job runs in a fresh copy of a repository folder (``GITHUB_WORKSPACE``) with a fresh
throwaway virtualenv on ``PATH``, its ``run:`` steps executed in order with ``bash -e`` and the
files and variables GitHub provides (``GITHUB_OUTPUT``, ``GITHUB_ENV``, ``GITHUB_PATH``,
``GITHUB_STEP_SUMMARY``, ``RUNNER_TEMP``, the workflow's, job's and step's ``env``), ``if:``
conditions and ``${{ }}`` expressions evaluated, and steps after a failure skipped unless their
condition says ``always()`` or ``failure()``.

Actions (``uses:``) are not run: checkout and setup-python are what this runner already provides
(the workspace copy, the virtualenv); upload-artifact and download-artifact copy folders to and
from an artifact store, one folder per workflow run, which a ``gh`` stand-in on ``PATH`` also
serves (``gh run list`` / ``gh run download``), so that a pull request's job finds the run that
a push to main stored.

Offline by construction: the throwaway virtualenv sees the test interpreter's packages through a
``.pth`` file, and pip runs with ``PIP_NO_INDEX`` and without build isolation (harness only: the
published workflow installs normally), so ``pip install .`` installs the workspace's evalkit
without reaching an index.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import re
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = "example-org/router-config"
TOKEN = "ghs_harnessTokenNotASecret"


def load_workflow(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as true
        doc["on"] = doc.pop(True)
    return doc


# --- expressions -------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||!|\(|\))"
                    r"|(?P<name>[A-Za-z_][\w\-]*(?:\.[A-Za-z_*][\w\-]*)*))")


class Expr:
    """GitHub's expression language, the part the examples use: literals, context paths,
    ``== != && || !``, parentheses and the status functions."""

    def __init__(self, text: str, context: dict[str, Any], status: dict[str, bool]) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise ValueError(f"cannot parse expression {text!r} at {text[pos:]!r}")
            kind = m.lastgroup
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0
        self.context = context
        self.status = status
        self.uses_status = False

    def value(self) -> Any:
        v = self._or()
        if self.i != len(self.tokens):
            raise ValueError(f"trailing tokens in expression: {self.tokens[self.i:]}")
        return v

    def _peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == "||":
            self.i += 1
            right = self._and()
            left = left if truthy(left) else right
        return left

    def _and(self) -> Any:
        left = self._not()
        while self._peek() == "&&":
            self.i += 1
            right = self._not()
            left = right if truthy(left) else left
        return left

    def _not(self) -> Any:
        if self._peek() == "!":
            self.i += 1
            return not truthy(self._not())
        return self._cmp()

    def _cmp(self) -> Any:
        left = self._primary()
        if self._peek() in ("==", "!="):
            op = self.tokens[self.i][1]
            self.i += 1
            right = self._primary()
            same = loose_equal(left, right)
            return same if op == "==" else not same
        return left

    def _primary(self) -> Any:
        kind, tok = self.tokens[self.i]
        self.i += 1
        if tok == "(":
            v = self._or()
            assert self._peek() == ")", "unbalanced parentheses"
            self.i += 1
            return v
        if kind == "str":
            return tok[1:-1].replace("''", "'")
        if kind == "num":
            return float(tok)
        if tok in ("true", "false"):
            return tok == "true"
        if tok == "null":
            return None
        if self._peek() == "(":  # a status function
            self.i += 1
            assert self._peek() == ")", f"only argument-less functions are supported: {tok}"
            self.i += 1
            self.uses_status = True
            failed = self.status.get("failed", False)
            return {"always": True, "success": not failed, "failure": failed, "cancelled": False}[tok]
        value: Any = self.context
        for part in tok.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value


def truthy(value: Any) -> bool:
    return value not in (None, "", 0, 0.0, False)


def loose_equal(a: Any, b: Any) -> bool:
    """GitHub's ``==``: strings compare ignoring case; otherwise both sides become numbers
    (null 0, booleans 1/0, a string its number, '' 0, other text NaN)."""
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()

    def number(v: Any) -> float:
        if v is None:
            return 0.0
        if isinstance(v, (bool, int, float)):
            return float(v)
        try:
            return float(v.strip() or 0)
        except ValueError:
            return float("nan")

    return number(a) == number(b)


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def interpolate(text: Any, context: dict[str, Any]) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: as_text(Expr(m.group(1), context, {}).value()), str(text))


def condition(text: str | None, context: dict[str, Any], *, failed: bool) -> bool:
    """A step's ``if:``: without a status function it is ``success() && (...)``."""
    if text is None:
        return not failed
    body = str(text).strip()
    if body.startswith("${{") and body.endswith("}}"):
        body = body[3:-2]
    expr = Expr(body, context, {"failed": failed})
    value = truthy(expr.value())
    return value if expr.uses_status else (value and not failed)


# --- the runner ---------------------------------------------------------------------------------

@dataclass
class StepResult:
    name: str
    outcome: str  # success | failure | skipped
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""


@dataclass
class JobResult:
    job: str
    conclusion: str
    steps: list[StepResult] = field(default_factory=list)
    summary: str = ""
    workspace: Path | None = None

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.name == name)

    def describe(self) -> str:
        return "\n".join(f"--- {s.name}: {s.outcome} ({s.exit_code})\n{s.stdout[-3000:]}\n{s.stderr[-3000:]}"
                         for s in self.steps)


GH_STUB = r'''
import json, os, shutil, sys
from pathlib import Path

store = Path(os.environ["HARNESS_ARTIFACTS"])
args = sys.argv[1:]
if not os.environ.get("GH_TOKEN"):
    sys.exit("gh: To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN environment variable.")

def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default

if os.environ.get("GITHUB_REPOSITORY") != opt("--repo"):
    sys.exit(f"gh: unknown repository {opt('--repo')}")
runs = json.loads((store / "runs.json").read_text()) if (store / "runs.json").is_file() else []
if args[:2] == ["run", "list"]:
    want = {"workflow": opt("--workflow"), "branch": opt("--branch"), "event": opt("--event"),
            "conclusion": opt("--status")}
    found = [r for r in reversed(runs) if all(v is None or r[k] == v for k, v in want.items())]
    found = found[: int(opt("--limit", "20"))]
    if opt("--json") != "databaseId" or opt("--jq") not in (None, ".[0].databaseId"):
        sys.exit("gh stand-in: only --json databaseId [--jq '.[0].databaseId'] is implemented")
    if opt("--jq"):
        print(found[0]["id"] if found else "")
    else:
        print(json.dumps([{"databaseId": r["id"]} for r in found]))
elif args[:2] == ["run", "download"]:
    src = store / str(args[2]) / opt("--name")
    if not src.is_dir():
        sys.exit(f"no artifact matches any of the names or patterns provided")
    shutil.copytree(src, Path(opt("--dir", ".")), dirs_exist_ok=True)
else:
    sys.exit(f"gh stand-in: not implemented: {args}")
'''


class Runner:
    """Runs the jobs of one workflow file, one workflow run at a time, sharing an artifact store."""

    def __init__(self, root: Path, *, env_overrides: dict[str, str] | None = None) -> None:
        self.root = root
        self.artifacts = root / "artifacts"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.env_overrides = env_overrides or {}
        self.count = 0
        stub_bin = root / "stub-bin"
        stub_bin.mkdir(exist_ok=True)
        gh = stub_bin / "gh"
        gh.write_text(f"#!{sys.executable}\n{GH_STUB}")
        gh.chmod(0o755)
        self.stub_bin = stub_bin

    def _record_run(self, run_id: int, workflow: str, event: str, branch: str, conclusion: str) -> None:
        path = self.artifacts / "runs.json"
        runs = json.loads(path.read_text()) if path.is_file() else []
        runs.append({"id": run_id, "workflow": workflow, "event": event, "branch": branch, "conclusion": conclusion})
        path.write_text(json.dumps(runs))

    def run_workflow(self, workflow_path: Path, repo: Path, *, event: str, branch: str,
                     pr_number: int | None = None) -> dict[str, list[JobResult]]:
        """All jobs of the workflow in file order (``needs`` honoured by that order), each matrix
        combination a job of its own; returns the job results by job id."""
        wf = load_workflow(workflow_path)
        on = wf["on"]
        assert event in (on if isinstance(on, (list, dict)) else [on]), f"{workflow_path.name} does not run on {event}"
        self.count += 1
        run_id = 1000 + self.count
        results: dict[str, list[JobResult]] = {}
        for job_id, job in wf["jobs"].items():
            needs = job.get("needs") or []
            needs = [needs] if isinstance(needs, str) else needs
            if any(r.conclusion != "success" for n in needs for r in results.get(n, [])):
                results[job_id] = [JobResult(job=job_id, conclusion="skipped")]
                continue
            matrix = (job.get("strategy") or {}).get("matrix") or {}
            assert not {"include", "exclude"} & set(matrix), "matrix include/exclude is not implemented"
            combos = [dict(zip(matrix, values)) for values in itertools.product(*matrix.values())] or [{}]
            results[job_id] = [self._run_job(wf, job_id, job, combo, repo, run_id=run_id, event=event, branch=branch,
                                             pr_number=pr_number, workflow_file=workflow_path.name)
                               for combo in combos]
        conclusion = "success" if all(r.conclusion == "success" for rs in results.values() for r in rs) else "failure"
        self._record_run(run_id, workflow_path.name, event, branch, conclusion)
        return results

    def _run_job(self, wf: dict[str, Any], job_id: str, job: dict[str, Any], matrix: dict[str, Any], repo: Path, *,
                 run_id: int, event: str, branch: str, pr_number: int | None, workflow_file: str) -> JobResult:
        label = job_id + "".join(f"-{v}" for v in matrix.values())
        base = self.root / f"run-{run_id}" / label
        workspace, temp, home = base / "workspace", base / "temp", base / "home"
        temp.mkdir(parents=True)
        home.mkdir()
        shutil.copytree(repo, workspace, symlinks=True)
        venv = make_venv(base / "venv")
        github = {"event_name": event, "ref": f"refs/heads/{branch}" if event == "push" else f"refs/pull/{pr_number}/merge",
                  "sha": "0123456789abcdef0123456789abcdef01234567", "repository": REPO, "token": TOKEN,
                  "run_id": str(run_id), "workflow": wf.get("name", ""), "job": job_id,
                  "event": {"pull_request": {"number": pr_number}} if event == "pull_request" else {}}
        context: dict[str, Any] = {"github": github, "matrix": matrix, "steps": {}, "env": {}, "runner": {"os": "Linux"}}
        env: dict[str, str] = {}
        for key, value in (wf.get("env") or {}).items():
            env[key] = self.env_overrides.get(key, interpolate(value, {**context, "env": env}))
        for key, value in (job.get("env") or {}).items():
            env[key] = interpolate(value, {**context, "env": env})
        extra_path: list[str] = []
        summary_parts: list[str] = []
        steps: list[StepResult] = []
        failed = False
        for n, step in enumerate(job["steps"]):
            context["env"] = env
            name = interpolate(step.get("name") or step.get("uses") or step["run"].splitlines()[0], context)
            if not condition(step.get("if"), context, failed=failed):
                steps.append(StepResult(name=name, outcome="skipped"))
                continue
            step_env = {**env, **{k: interpolate(v, context) for k, v in (step.get("env") or {}).items()}}
            if "uses" in step:
                result = self._action(step, name, context, workspace, run_id)
            else:
                files = {k: base / f"{k.lower()}-{n}" for k in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH",
                                                                 "GITHUB_STEP_SUMMARY")}
                for f in files.values():
                    f.write_text("")
                script = base / f"step-{n}.sh"
                script.write_text(step["run"])
                full_env = {
                    "PATH": os.pathsep.join([*reversed(extra_path), str(venv / "bin"), str(self.stub_bin),
                                             os.environ.get("PATH", "/usr/bin:/bin")]),
                    "HOME": str(home), "LANG": "C.UTF-8", "CI": "true", "GITHUB_ACTIONS": "true",
                    "RUNNER_OS": "Linux", "RUNNER_TEMP": str(temp), "GITHUB_WORKSPACE": str(workspace),
                    "GITHUB_EVENT_NAME": event, "GITHUB_REF": github["ref"], "GITHUB_SHA": github["sha"],
                    "GITHUB_REPOSITORY": REPO, "GITHUB_RUN_ID": str(run_id), "GITHUB_JOB": job_id,
                    "GITHUB_WORKFLOW": github["workflow"],
                    # harness only: installs from the workspace with no index and no build isolation
                    "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                    "HARNESS_ARTIFACTS": str(self.artifacts),
                    **{k: str(v) for k, v in files.items()},
                    **step_env,
                }
                shell = ["bash", "--noprofile", "--norc", "-eo", "pipefail"] if step.get("shell") == "bash" else ["bash", "-e"]
                proc = subprocess.run([*shell, str(script)], cwd=workspace, env=full_env, capture_output=True, text=True,
                                      timeout=1200)
                result = StepResult(name=name, outcome="success" if proc.returncode == 0 else "failure",
                                    exit_code=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)
                outputs = parse_kv(files["GITHUB_OUTPUT"].read_text())
                if step.get("id"):
                    context["steps"][step["id"]] = {"outputs": outputs, "outcome": result.outcome}
                env.update(parse_kv(files["GITHUB_ENV"].read_text()))
                extra_path += [p for p in files["GITHUB_PATH"].read_text().splitlines() if p.strip()]
                summary_parts.append(files["GITHUB_STEP_SUMMARY"].read_text())
            steps.append(result)
            failed = failed or result.outcome == "failure"
        return JobResult(job=label, conclusion="failure" if failed else "success", steps=steps,
                         summary="".join(summary_parts), workspace=workspace)

    def _action(self, step: dict[str, Any], name: str, context: dict[str, Any], workspace: Path,
                run_id: int) -> StepResult:
        action = step["uses"].split("@")[0]
        inputs = {k: interpolate(v, context) for k, v in (step.get("with") or {}).items()}
        store = self.artifacts / str(run_id)
        if action in ("actions/checkout", "actions/setup-python"):
            return StepResult(name=name, outcome="success", stdout=f"{action}: provided by the harness")
        if action == "actions/upload-artifact":
            src = workspace / inputs["path"]
            if not inputs["path"] or not src.exists():
                return StepResult(name=name, outcome="success", stdout=f"no files found at {inputs['path']!r}")
            dest = store / inputs["name"]
            assert not dest.exists(), f"artifact {inputs['name']} uploaded twice in one run"
            if src.is_dir():
                shutil.copytree(src, dest)
            else:
                dest.mkdir(parents=True)
                shutil.copy2(src, dest / src.name)
            return StepResult(name=name, outcome="success")
        if action == "actions/download-artifact":
            dest = workspace / inputs.get("path", ".")
            names = [p.name for p in store.iterdir()] if store.is_dir() else []
            if "name" in inputs:
                if inputs["name"] not in names:
                    return StepResult(name=name, outcome="failure", stderr=f"artifact {inputs['name']} not found")
                shutil.copytree(store / inputs["name"], dest, dirs_exist_ok=True)
            else:
                for artifact in fnmatch.filter(names, inputs.get("pattern", "*")):
                    shutil.copytree(store / artifact, dest / artifact)
            return StepResult(name=name, outcome="success")
        raise AssertionError(f"the harness does not know the action {action}")


def parse_kv(text: str) -> dict[str, str]:
    """``NAME=value`` lines and ``NAME<<DELIM`` blocks, as GitHub reads GITHUB_OUTPUT / GITHUB_ENV."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            out[key] = "\n".join(itertools.takewhile(lambda x: x != delim, lines))
        elif "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def make_venv(path: Path) -> Path:
    """A fresh virtualenv that sees the test interpreter's packages (no network needed for them)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    (purelib,) = [Path(p) for p in (path / "lib").glob("python*/site-packages")]
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "zz-parent-env.pth").write_text("".join(f"{p}\n" for p in parents))
    return path


def repository_copy(src: Path, dest: Path) -> Path:
    """The repository's files as a checkout would have them (tracked and new, not ignored)."""
    listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=src, capture_output=True,
                             check=True, timeout=120).stdout.decode().split("\0")
    for rel in filter(None, listing):
        target = dest / rel
        if (src / rel).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, target)
    return dest


__all__ = ["Runner", "JobResult", "StepResult", "load_workflow", "repository_copy", "interpolate", "condition"]
