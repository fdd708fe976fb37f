"""edgebench/2: the example in SCHEMA.md validates (jsonschema and report.validate); broken copies fail both."""

import copy
import json
import re
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

from benchmarks.report import SCHEMA_PATH, validate
from benchmarks.stats import summarize

SCHEMA_MD = Path(__file__).resolve().parents[2] / "benchmarks" / "SCHEMA.md"


def example_results() -> Dict[str, Any]:
    """The complete example of SCHEMA.md (the other benchmark tests build on it)."""
    block = re.search(r"```json\n(.*?)```", SCHEMA_MD.read_text(encoding="utf-8"), re.S)
    assert block, "SCHEMA.md lost its ```json example"
    return json.loads(block.group(1))


def _set(path: str, value: Any) -> Callable[[Dict[str, Any]], None]:
    """A mutation that sets (or, with value DELETE, removes) the field at a dotted path like rows.1.status."""
    def apply(results: Dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = results
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return apply


DELETE = object()
INFERENCE = "rows.1.latency_ms.inference"

# (case, mutation, the validate() message contains, jsonschema rejects it too)
BROKEN = [
    ("no schema field", _set("schema", DELETE), "missing required field 'schema'", True),
    ("wrong schema id", _set("schema", "edgebench/0"), "must be one of ['edgebench/2', 'edgebench/1']", True),
    ("drift without flagged", _set("rows.0.drift.flagged", DELETE), "drift: missing required field 'flagged'", True),
    ("unknown speed-up method", _set("rows.1.speedup.method", "guessed"), "speedup.method: must be one of", True),
    ("no rows", _set("rows", DELETE), "missing required field 'rows'", True),
    ("no environment.cores", _set("environment.cores", DELETE), "missing required field 'cores'", True),
    ("cores as text", _set("environment.cores", "8"), "environment.cores: expected integer", True),
    ("row without backend", _set("rows.0.backend", DELETE), "rows[0]: missing required field 'backend'", True),
    ("unknown status", _set("rows.0.status", "crashed"), "must be one of", True),
    ("stats without p50", _set(f"{INFERENCE}.p50", DELETE), "inference: missing required field 'p50'", True),
    ("n of zero", _set(f"{INFERENCE}.n", 0), "must be >= 1", True),
    ("fractional n", _set(f"{INFERENCE}.n", 200.5), "n: expected integer", True),
    ("CI of three", _set(f"{INFERENCE}.p50_ci95", [1.0, 2.0, 3.0]), "expected 2..2 items", True),
    ("CI as text", _set(f"{INFERENCE}.p50_ci95", ["a", "b"]), "p50_ci95[0]: expected number", True),
    ("boolean as number", _set(f"{INFERENCE}.mean", True), "mean: expected number", True),
    ("text samples", _set("rows.1.samples_ms", {"inference": ["1"]}), "samples_ms.inference[0]", True),
    ("speed-up CI of one", _set("rows.1.speedup.ci95", [1.0]), "speedup.ci95: expected 2..2", True),
    # rules beyond the JSON Schema: only validate() sees them
    ("NaN mean", _set(f"{INFERENCE}.mean", float("nan")), "not a finite number", False),
    ("failed row without reason", _set("rows.2.reason", None), "needs a one-line 'reason'", False),
    ("two-line reason", _set("rows.2.reason", "boom\nTraceback"), "must be one line", False),
    ("reversed CI", _set(f"{INFERENCE}.p50_ci95", [4.2, 4.1]), "low end 4.2 above high end 4.1", False),
    ("p50 above max", _set(f"{INFERENCE}.p50", 9.0), "min <= p50 <= max", False),
]


def test_the_example_is_valid():
    assert validate(example_results()) == []


def test_the_example_is_valid_for_jsonschema():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a test-only dependency")
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(example_results())


@pytest.mark.parametrize("case, mutate, message, schema_rejects", BROKEN, ids=[c[0] for c in BROKEN])
def test_validate_catches(case, mutate, message, schema_rejects):
    results = copy.deepcopy(example_results())
    mutate(results)
    errors = validate(results)
    assert any(message in error for error in errors), errors


@pytest.mark.parametrize("case, mutate, message, schema_rejects", [c for c in BROKEN if c[3]],
                         ids=[c[0] for c in BROKEN if c[3]])
def test_jsonschema_rejects(case, mutate, message, schema_rejects):
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a test-only dependency")
    results = copy.deepcopy(example_results())
    mutate(results)
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(results))


@pytest.mark.parametrize("samples", [[5.0], [1.0, 2.0], list(range(1, 101))], ids=["one", "two", "hundred"])
def test_summarize_makes_a_valid_stats_object(samples):
    results = example_results()
    results["rows"][1]["latency_ms"]["inference"] = summarize(samples, includes="H2D + compute + D2H")
    assert validate(results) == []


def test_not_a_dict():
    assert validate([]) == ["results: expected object, got list []"]
