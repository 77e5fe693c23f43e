"""Load-time checks of the arena file's `compositions:`, each problem at its file:line: upstream's validation
(step ids, kinds and their fields, prompt/tool references, predicates, reducers, cycles, the output step) plus
what upstream only finds when the run gets there (references to steps that have not run, nested control steps
in a parallel, output schemas that are not JSON schemas) and the limits of model.py."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jsonschema
from pydantic import BaseModel

from ..manifests import OUTSIDE_BUNDLE, Collector, escapes, suggest, validate_model
from ..schemas import validator_for
from . import model as m
from .scope import is_whole_ref, ref_roots

if TYPE_CHECKING:
    from ..bundle import Bundle
    from ..checks import ToolNames

Path_ = list[str | int]


@dataclass
class Compositions:
    """The bundle's validated compositions, with what running them needs resolved once."""

    specs: dict[str, m.Composition] = field(default_factory=dict)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)  # output_schema file → the schema
    prompts: dict[str, str] = field(default_factory=dict)  # prompt_task (a task_type) → prompt config id


class _Checker:
    def __init__(self, bundle: Bundle, file: str, doc: Any, out: Collector, names: ToolNames | None) -> None:
        self.bundle, self.file, self.doc, self.out, self.names = bundle, file, doc, out, names
        self.found = Compositions()
        self.tasks = {p.task_type: pid for pid, p in bundle.prompt_configs.items() if p.task_type}

    def error(self, where: Path_, message: str) -> None:
        self.out.add(self.file, self.doc, where, message)

    def warn(self, where: Path_, message: str) -> None:
        self.out.warn(self.file, self.doc, where, message)

    def run(self, raw: Any) -> Compositions:
        base: Path_ = ["spec", "compositions"]
        if not isinstance(raw, dict):
            self.error(base, f"compositions must be a mapping of name → composition, got {type(raw).__name__}")
            return self.found
        if len(raw) > m.MAX_COMPOSITIONS:
            self.error(base, f"{len(raw)} compositions; an arena file may declare at most {m.MAX_COMPOSITIONS}")
            return self.found
        for name, body in raw.items():
            where = [*base, name]
            if not isinstance(body, dict):
                self.error(where, "a composition must be a mapping (version, steps, output)")
                continue
            comp = validate_model(m.Composition, body, self.file, self.doc, where, self.out)
            if comp is not None and self.composition(str(name), comp, where):
                self.found.specs[str(name)] = comp
        return self.found

    def composition(self, name: str, comp: m.Composition, where: Path_) -> bool:
        before = len(self.out.problems)
        self.unknown_keys(comp, where)
        if name in m.RESERVED_NAMES:
            self.error(where, f"{name!r} is a reserved runtime name")
        if comp.version != 1:
            self.error([*where, "version"], f"version must be 1, got {comp.version}")
        if not comp.steps:
            self.error([*where, "steps"], "a composition needs at least one step")
            return False
        steps = list(self.walk(comp, where))
        if len(steps) > m.MAX_STEPS:
            self.error([*where, "steps"], f"{len(steps)} steps; a composition may have at most {m.MAX_STEPS}")
            return False
        order = self.ids(steps)
        for step, path, parent in steps:
            self.step(step, path, parent, order)
        if len(order) == len(steps):  # with duplicate ids the graph is not well defined
            self.graph(comp, where, order)
        self.output(comp, where, order)
        for key in ("input_schema", "output_schema"):
            if getattr(comp, key):
                self.schema(getattr(comp, key), [*where, key])
        return len(self.out.problems) == before

    def walk(self, comp: m.Composition, where: Path_) -> Any:
        """(step, path, parallel parent or None) for every step, nested ones at any depth."""
        def down(step: m.Step, path: Path_, parent: m.Step | None) -> Any:
            yield step, path, parent
            for j, branch in enumerate(step.branches):
                yield from down(branch, [*path, "branches", j], step)
        for i, step in enumerate(comp.steps):
            yield from down(step, [*where, "steps", i], None)

    def ids(self, steps: list[tuple[m.Step, Path_, m.Step | None]]) -> dict[str, tuple[int, m.Step | None]]:
        """step id → (top-level position, its parallel parent or None)."""
        order: dict[str, tuple[int, m.Step | None]] = {}
        top = -1
        for step, path, parent in steps:
            top += parent is None
            if not re.match(m.STEP_ID_PATTERN, step.id):
                self.error([*path, "id"], f"step id {step.id!r} must match {m.STEP_ID_PATTERN}")
            if step.id in order:
                self.error([*path, "id"], f"duplicate step id {step.id!r}")
                continue
            order[step.id] = (top, parent)
        return order

    def step(self, step: m.Step, path: Path_, parent: m.Step | None,
             order: dict[str, tuple[int, m.Step | None]]) -> None:
        self.unknown_keys(step, path)
        if step.kind not in m.KINDS:
            self.error([*path, "kind"], f"unknown kind {step.kind!r}{suggest(step.kind, m.KINDS)}; "
                                        f"one of {', '.join(m.KINDS)}")
            return
        for name in sorted(step.set_fields() - m.KIND_FIELDS[step.kind]):
            self.error([*path, name], f"field {name!r} is not allowed for kind {step.kind!r}")
        if parent is not None and step.kind not in m.LEAF_KINDS:
            self.error([*path, "kind"], f"a parallel branch must be a prompt, agent or tool step, not {step.kind!r}")
        {m.PROMPT: self.llm, m.AGENT: self.llm, m.TOOL: self.tool, m.BRANCH: self.branch,
         m.PARALLEL: self.parallel}[step.kind](step, path)
        self.references(step, path, parent, order)
        evals = set(self.bundle.evals)
        for k, name in enumerate(step.modifiers.eval if step.modifiers else []):
            if name not in evals:
                self.warn([*path, "modifiers", "eval", k], f"eval {name!r} is not one of the bundle's evals")

    def llm(self, step: m.Step, path: Path_) -> None:
        if not step.prompt_task:
            self.error([*path, "prompt_task"], f"a {step.kind} step needs a prompt_task")
        elif self.names is not None and step.prompt_task not in self.tasks:
            self.error([*path, "prompt_task"], self.unknown_prompt(step.prompt_task))
        if step.kind == m.AGENT:
            term = step.termination
            if term is None or (not term.max_steps and not term.tool_called):
                self.error([*path, "termination"], "an agent step must declare termination (max_steps or "
                                                   "tool_called)")
            allowed = set(self.prompt(step).allowed_tools) if step.prompt_task in self.tasks else None
            for k, name in enumerate(step.tools):
                self.tool_name(name, [*path, "tools", k])
                if allowed is not None and name not in allowed:
                    self.warn([*path, "tools", k], f"tool {name!r} is not in prompt {step.prompt_task!r}'s "
                                                   "allowed_tools, so the step is not offered it (as upstream)")
        if step.output_schema:
            self.schema(step.output_schema, [*path, "output_schema"])

    def prompt(self, step: m.Step) -> Any:
        return self.bundle.prompt_configs[self.tasks[step.prompt_task]]

    def unknown_prompt(self, task: str) -> str:
        hint = suggest(task, self.tasks)
        by_id = self.bundle.prompt_configs.get(task)
        if by_id is not None and by_id.task_type:
            hint = f" (prompt config {task!r} has task_type {by_id.task_type!r}; prompt_task names a task_type)"
        known = ", ".join(sorted(self.tasks)) or "none"
        return f"no prompt config with task_type {task!r}{hint}; the bundle's task types: {known}"

    def tool(self, step: m.Step, path: Path_) -> None:
        if not step.tool:
            self.error([*path, "tool"], "a tool step needs a tool")
        else:
            self.tool_name(step.tool, [*path, "tool"])

    def tool_name(self, name: str, where: Path_) -> None:
        if self.names is not None and (problem := self.names.problem(name)) is not None:
            self.error(where, problem)

    def branch(self, step: m.Step, path: Path_) -> None:
        if not step.then:
            self.error(path, "a branch step must declare then")
        if step.predicate is None:
            self.error(path, "a branch step must declare a predicate")
        else:
            self.predicate(step.predicate, [*path, "predicate"], 1)

    def predicate(self, pred: m.Predicate, where: Path_, depth: int) -> None:
        self.unknown_keys(pred, where)
        if depth > m.MAX_PREDICATE_DEPTH:
            self.error(where, f"predicates nest at most {m.MAX_PREDICATE_DEPTH} deep")
            return
        compare = bool(pred.op) or pred.value is not None
        variants = [compare, pred.exists is not None, bool(pred.all_of), bool(pred.any_of), pred.not_ is not None]
        if sum(variants) != 1:
            self.error(where, "a predicate sets exactly one of: op (path, op, value), exists (path, exists), "
                              "all_of, any_of, not")
            return
        if compare or pred.exists is not None:
            if not pred.path:
                self.error(where, "the predicate needs a path (a ${...} reference)")
            elif not is_whole_ref(pred.path):
                self.error([*where, "path"], f"path {pred.path!r} must be a single reference such as "
                                             "${classify.output.type}")
        if compare:
            self.compare(pred, where)
        for key, subs in (("all_of", pred.all_of), ("any_of", pred.any_of)):
            for k, sub in enumerate(subs or []):
                self.predicate(sub, [*where, key, k], depth + 1)
        if pred.not_ is not None:
            self.predicate(pred.not_, [*where, "not"], depth + 1)

    def compare(self, pred: m.Predicate, where: Path_) -> None:
        if pred.op not in m.COMPARE_OPS:
            self.error([*where, "op"], f"predicate op {pred.op!r} is not valid{suggest(pred.op, m.COMPARE_OPS)}; "
                                       f"one of {', '.join(m.COMPARE_OPS)}")
        elif pred.op in m.LIST_OPS and not isinstance(pred.value, list):
            self.error([*where, "value"] if pred.value is not None else where, f"op {pred.op!r} needs a list value")
        elif pred.op in m.ORDERED_OPS and (not isinstance(pred.value, int | float) or isinstance(pred.value, bool)):
            self.error([*where, "value"] if pred.value is not None else where, f"op {pred.op!r} needs a number value")

    def parallel(self, step: m.Step, path: Path_) -> None:
        if len(step.branches) < 2:
            self.error([*path, "branches"] if step.branches else path, "a parallel step needs at least two branches")
        if len(step.branches) > m.MAX_PARALLEL_BRANCHES:
            self.error([*path, "branches"], f"{len(step.branches)} branches; at most {m.MAX_PARALLEL_BRANCHES}")
        if step.reduce is None:
            self.error(path, "a parallel step must declare reduce (strategy and into)")
            return
        self.unknown_keys(step.reduce, [*path, "reduce"])
        if step.reduce.strategy not in m.REDUCE_STRATEGIES:
            self.error([*path, "reduce", "strategy"], f"reduce.strategy {step.reduce.strategy!r} is not valid; one "
                                                      f"of {', '.join(m.REDUCE_STRATEGIES)}")
        if not step.reduce.into:
            self.error([*path, "reduce"], "reduce.into is required (the key the merged result is under)")

    def references(self, step: m.Step, path: Path_, parent: m.Step | None,
                   order: dict[str, tuple[int, m.Step | None]]) -> None:
        """Every ${root...} names the input or a top-level step that has run by the time this one does."""
        here = order.get(step.id, (0, None))[0]
        sources = [("input", step.input), ("args", step.args)]
        if step.predicate is not None:
            sources.append(("predicate", _paths(step.predicate)))
        for key, value in sources:
            for root in sorted(ref_roots(value)):
                problem = self.reference(root, step, here, parent, order)
                if problem:
                    self.error([*path, key], problem)

    def reference(self, root: str, step: m.Step, here: int, parent: m.Step | None,
                  order: dict[str, tuple[int, m.Step | None]]) -> str | None:
        if root == "input":
            return None
        if root not in order:
            return f"references unknown {root!r} (not 'input' or a step id){suggest(root, order)}"
        position, owner = order[root]
        if owner is not None:
            return (f"references {root!r}, a branch of parallel step {owner.id!r}, whose output is only reachable "
                    f"as ${{{owner.id}.output.<into>}}")
        if position >= here:
            return f"references step {root!r}, which has not run when {step.id!r} does"
        return None

    def graph(self, comp: m.Composition, where: Path_, order: dict[str, tuple[int, m.Step | None]]) -> None:
        for i, step in enumerate(comp.steps):
            path = [*where, "steps", i]
            for key, target in (("then", step.then), ("else", step.else_)):
                if target and target not in order:
                    self.error([*path, key], f"{key} {target!r} does not name a step{suggest(target, order)}")
                elif target and order[target][1] is not None:
                    self.error([*path, key], f"{key} {target!r} is a branch of a parallel step; name a top-level step")
            for k, dep in enumerate(step.depends_on):
                at = [*path, "depends_on", k]
                if dep not in order:
                    self.error(at, f"depends_on {dep!r} does not name a step{suggest(dep, order)}")
                elif order[dep][0] >= i:
                    self.error(at, f"depends_on {dep!r} must name an earlier step")
        cycle = _cycle(comp)
        if cycle:
            first = next(i for i, s in enumerate(comp.steps) if s.id == cycle[0])
            self.error([*where, "steps", first], f"the step graph contains a cycle: {' → '.join(cycle)} (a then/else "
                                                 "or depends_on pointing back)")

    def output(self, comp: m.Composition, where: Path_, order: dict[str, tuple[int, m.Step | None]]) -> None:
        tops = {s.id: s for s in comp.steps}
        if comp.output:
            if comp.output not in order:
                self.error([*where, "output"], f"output {comp.output!r} does not name a step"
                                               f"{suggest(comp.output, order)}")
            elif comp.output not in tops:
                self.error([*where, "output"], f"output {comp.output!r} is a branch of a parallel step; name the "
                                               "parallel step")
            elif tops[comp.output].kind == m.BRANCH:
                self.error([*where, "output"], f"output {comp.output!r} is a branch step, which has no output")
        elif all(s.kind == m.BRANCH for s in comp.steps):
            self.error([*where, "steps"], "no step produces an output (every step is a branch)")

    def schema(self, ref: str, where: Path_) -> None:
        if self.names is None or ref in self.found.schemas:
            return
        root = self.bundle.root
        if escapes(root, ref):
            self.error(where, f"{ref}: schema file {OUTSIDE_BUNDLE}")
            return
        path = root / ref
        if not path.is_file():
            self.error(where, f"{ref}: schema file not found")
            return
        if path.stat().st_size > m.MAX_SCHEMA_BYTES:
            self.error(where, f"{ref}: a schema file may be at most {m.MAX_SCHEMA_BYTES:,} bytes")
            return
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(schema, dict):
                raise ValueError("a JSON schema is an object")
            validator_for(schema)
        except (OSError, UnicodeDecodeError, ValueError, jsonschema.SchemaError) as exc:
            message = exc.message if isinstance(exc, jsonschema.SchemaError) else str(exc)
            self.error(where, f"{ref}: not a JSON schema: {message}")
            return
        self.found.schemas[ref] = schema

    def unknown_keys(self, obj: BaseModel, where: Path_) -> None:
        known = {f.alias or name for name, f in type(obj).model_fields.items()}
        for key in obj.model_extra or {}:
            self.warn([*where, key], f"unknown key {key!r}{suggest(str(key), known)} (kept, not used)")


def _paths(pred: m.Predicate) -> list[str]:
    found = [pred.path] if pred.path else []
    for sub in [*(pred.all_of or []), *(pred.any_of or []), *([pred.not_] if pred.not_ else [])]:
        found.extend(_paths(sub))
    return found


def _cycle(comp: m.Composition) -> list[str]:
    """A cycle over upstream's edges (each step → its depends_on, or the step before it; then/else targets → the
    branch), as the ids around it; [] when there is none."""
    edges: dict[str, list[str]] = {}
    for i, step in enumerate(comp.steps):
        edges.setdefault(step.id, []).extend(step.depends_on or ([comp.steps[i - 1].id] if i else []))
        for target in (step.then, step.else_) if step.kind == m.BRANCH else ():
            if target:
                edges.setdefault(target, []).append(step.id)
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        trail.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return [*trail[trail.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        trail.pop()
        return []

    for step in comp.steps:
        if step.id not in state and (found := visit(step.id)):
            return found
    return []


def check_compositions(bundle: Bundle, file: str, doc: Any, out: Collector, names: ToolNames | None) -> Compositions:
    """Validate the arena file's `compositions:` (none: an empty registry). `names` None: schema-only, so
    nothing another file defines (prompts, tools, schema files) is looked up."""
    raw = (bundle.arena.model_extra or {}).get("compositions")
    if raw is None:
        return Compositions()
    checker = _Checker(bundle, file, doc, out, names)
    found = checker.run(raw)
    found.prompts = checker.tasks
    return found
