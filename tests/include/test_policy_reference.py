"""The policy reference (docs/reference/policy.md) is generated from the model's field descriptions:
it must be the file the generator writes now, and no key of the policy may go undescribed."""

import typing

from pydantic import BaseModel

from include.retention.policy.model import RetentionPolicy
from include.retention.policy.reference import REFERENCE_PATH, reference_markdown


def test_the_policy_reference_is_what_the_model_generates_now():
    written = REFERENCE_PATH.read_text(encoding="utf-8") if REFERENCE_PATH.exists() else ""
    assert written == reference_markdown(), (
        "docs/reference/policy.md is not what the policy model describes: run `make docs`"
    )


def test_every_key_of_the_policy_model_has_a_description():
    undescribed = [
        f"{model.__name__}.{name}"
        for model in _models_reachable_from(RetentionPolicy)
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert not undescribed, f"give these fields a Field(description=...): {', '.join(undescribed)}"


def _models_reachable_from(root: type[BaseModel]) -> list[type[BaseModel]]:
    """Every model class a policy file can contain, through any list, mapping, union or Annotated."""
    found: list[type[BaseModel]] = []
    pending: list[object] = [root]
    while pending:
        annotation = pending.pop()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found.append(annotation)
                pending += [field.annotation for field in annotation.model_fields.values()]
        else:
            pending += typing.get_args(annotation)
    return found
