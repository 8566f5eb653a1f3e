"""The trigger forms say what they do, in the policy's language (issue 20).

Every param of every DAG has a title and a description, French with the shipped policy
(``language: fr``) and English when the policy says ``en``; a choice shows labels, not codes;
``subject_request`` has no default that could stop a request without anyone choosing it.
"""

from __future__ import annotations

from dags.legal_hold import SCOPE_LABELS
from dags.retention_dags import schedule_params
from dags.subject_request import REQUEST_LABELS, request_params
from include.retention.policy.load import load_policy
from include.retention.records.holds import SCOPES
from include.retention.rights.requests import REQUEST_TYPES


def test_every_param_of_every_dag_has_a_title_and_a_description(dagbag):
    untitled = [
        (dag_id, name)
        for dag_id, dag in dagbag.dags.items()
        for name in dag.params
        if not dag.params.get_param(name).schema.get("title") or not dag.params.get_param(name).description
    ]
    assert untitled == []


def test_the_forms_are_french_with_the_shipped_policy(dagbag):
    schedule = dagbag.dags["retention_prospection"].params
    assert schedule.get_param("as_of").schema["title"] == "À la date du"
    assert schedule.get_param("batch_size").schema["title"] == "Lignes par transaction"
    request = dagbag.dags["subject_request"].params
    assert request.get_param("request_type").schema["values_display"]["erasure"] == "Effacement (art. 17)"
    assert request.get_param("identity").schema["title"] == "Vérification d'identité"
    hold = dagbag.dags["legal_hold"].params
    assert hold.get_param("action").schema["values_display"] == {
        "add": "Poser un gel",
        "list": "Lister les gels",
        "lift": "Lever un gel",
    }
    report = dagbag.dags["retention_dpo_report"].params
    assert report["language"] == "fr" and report.get_param("language").schema["title"] == "Langue"


def test_the_forms_are_english_when_the_policy_says_en():
    policy = load_policy().model_copy(update={"language": "en"})
    mode = schedule_params(policy, policy.category("prospection"))["mode"]
    assert mode.schema["values_display"] == {"preview": "Preview (nothing changes)", "execute": "Execute"}
    assert request_params("en")["identity"].schema["values_display"]["pending"] == "Pending: record it only"


def test_the_subject_request_form_has_no_default_type_or_identity(dagbag):
    """Left as it opened, the form used to start an erasure whose identity was pending: a request
    that stopped before acting, without anyone having chosen either. Now both must be chosen."""
    params = dagbag.dags["subject_request"].params
    assert not params.get_param("request_type").has_value
    assert not params.get_param("identity").has_value


def test_every_request_type_and_hold_scope_has_a_label():
    assert set(REQUEST_LABELS) == set(REQUEST_TYPES)
    assert set(SCOPE_LABELS) == set(SCOPES)
