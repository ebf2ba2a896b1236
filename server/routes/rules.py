"""/api/v1/projects/{project}/rules: the rules in effect, and the project's own rules."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Response

from fadewatch.server.alerts.evaluation.compiled import effective_rules
from fadewatch.server.alerts.evaluation.rules import DEFAULT_RULES, RuleBody, RulePatch, RuleSpec
from fadewatch.server.alerts.schemas import RuleList, RuleOut
from fadewatch.server.deps import AlertContextDep, DatabaseDep, ProjectAccess, ProjectRead, ProjectWrite
from fadewatch.server.store import rules as stored
from fadewatch.server.store.alerts import project_for
from fadewatch.server.store.errors import Conflict, NotFound
from fadewatch.server.store.runs import find_project

router = APIRouter(prefix="/projects/{project}/rules", tags=["rules"])

RuleNamePath = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$", description="the rule's name")
NOT_FOUND = {404: {"description": "no such rule"}}
DEFAULT_NAMES = frozenset(r.name for r in DEFAULT_RULES)


def _effective(session, project: str, ctx) -> list[RuleOut]:
    """Every rule of the project, disabled ones included, with where each comes from."""
    found = find_project(session, project)
    api = stored.api_rules(session, found.id) if found is not None else []
    below = {r.name: r.source for r in effective_rules(project, ctx.file_rules, [])}
    out = []
    for rule in effective_rules(project, ctx.file_rules, api):
        lower = below.get(rule.name) if rule.source == "api" else None
        if rule.source != "default" and lower is None and rule.name in DEFAULT_NAMES:
            lower = "default"
        spec = rule.spec.model_dump(exclude={"projects"})
        out.append(RuleOut(**spec, source=rule.source, overrides=lower))
    return out


def _one(session, project: str, name: str, ctx) -> RuleOut:
    for rule in _effective(session, project, ctx):
        if rule.name == name:
            return rule
    raise NotFound(f"no rule named {name!r} in project {project!r}")


@router.get("", response_model=RuleList)
def list_rules(db: DatabaseDep, ctx: AlertContextDep, project: ProjectRead) -> RuleList:
    """The rules in effect: built-in defaults, overridden by name by the server's rule file, then by the API."""
    with db.transaction() as session:
        return RuleList(rules=_effective(session, project.name, ctx))


@router.get("/{name}", response_model=RuleOut, responses=NOT_FOUND)
def get_rule(db: DatabaseDep, ctx: AlertContextDep, project: ProjectRead,
             name: str = RuleNamePath) -> RuleOut:
    with db.transaction() as session:
        return _one(session, project.name, name, ctx)


@router.post("", response_model=RuleOut, status_code=201,
             responses={409: {"description": "the project already has its own rule of this name"}})
def create_rule(body: RuleSpec, db: DatabaseDep, ctx: AlertContextDep,
                project: ProjectWrite) -> RuleOut:
    """Add a rule. A name of a default or file rule replaces that rule for this project."""
    with db.write_transaction() as session:
        p = project_for(session, project.name, create=True)
        if stored.api_rule(session, p.id, body.name) is not None:
            raise Conflict(f"project {project.name!r} already has a rule named {body.name!r}: PUT or PATCH it")
        stored.put_rule(session, p.id, body, ctx.clock())
        return _one(session, project.name, body.name, ctx)


@router.put("/{name}", response_model=RuleOut, responses={201: {"model": RuleOut, "description": "created"}})
def put_rule(body: RuleBody, response: Response, db: DatabaseDep, ctx: AlertContextDep,
             project: ProjectWrite, name: str = RuleNamePath) -> RuleOut:
    """Create or replace the project's rule `name` (201 when created)."""
    spec = RuleSpec.model_validate({**body.model_dump(), "name": name})
    with db.write_transaction() as session:
        p = project_for(session, project.name, create=True)
        created = stored.put_rule(session, p.id, spec, ctx.clock())
        response.status_code = 201 if created else 200
        return _one(session, project.name, name, ctx)


def _patch(db, ctx, project: ProjectAccess, name: str, patch: RulePatch) -> RuleOut:
    with db.write_transaction() as session:
        p = project_for(session, project.name, create=True)
        current = _one(session, project.name, name, ctx)
        base = RuleSpec.model_validate(current.model_dump(exclude={"source", "overrides"}))
        try:
            spec = patch.apply(base)
        except ValueError as exc:
            raise HTTPException(422, f"the patched rule is not valid: {exc}") from None
        stored.put_rule(session, p.id, spec, ctx.clock())
        return _one(session, project.name, name, ctx)


@router.patch("/{name}", response_model=RuleOut, responses=NOT_FOUND)
def patch_rule(patch: RulePatch, db: DatabaseDep, ctx: AlertContextDep,
               project: ProjectWrite, name: str = RuleNamePath) -> RuleOut:
    """Change some fields of a rule. Patching a default or file rule stores the result as the project's own."""
    return _patch(db, ctx, project, name, patch)


@router.post("/{name}/disable", response_model=RuleOut, responses=NOT_FOUND)
def disable_rule(db: DatabaseDep, ctx: AlertContextDep, project: ProjectWrite,
                 name: str = RuleNamePath) -> RuleOut:
    """Switch a rule off for this project, defaults included; firing alerts of it resolve."""
    return _patch(db, ctx, project, name, RulePatch(enabled=False))


@router.post("/{name}/enable", response_model=RuleOut, responses=NOT_FOUND)
def enable_rule(db: DatabaseDep, ctx: AlertContextDep, project: ProjectWrite,
                name: str = RuleNamePath) -> RuleOut:
    return _patch(db, ctx, project, name, RulePatch(enabled=True))


@router.delete("/{name}", status_code=204, responses={
    404: {"description": "no such rule"},
    409: {"description": "a default or file rule: disable it instead"},
})
def delete_rule(db: DatabaseDep, ctx: AlertContextDep, project: ProjectWrite,
                name: str = RuleNamePath) -> Response:
    """Remove the project's own rule; a default or file rule of the same name takes effect again."""
    with db.write_transaction() as session:
        p = project_for(session, project.name, create=True)
        if not stored.delete_rule(session, p.id, name):
            current = _one(session, project.name, name, ctx)  # 404 when there is no such rule at all
            raise Conflict(f"rule {name!r} is a {current.source} rule, which cannot be deleted: "
                           f"disable it with POST .../rules/{name}/disable or PATCH {{\"enabled\": false}}")
    return Response(status_code=204)
