"""The /health/vault route: registered without compiling its URL builders, built on first use."""

from __future__ import annotations

from flask import Flask, request, url_for
from werkzeug.routing import Rule

from flask_vault.health import view

ENDPOINT = "vault_health.vault_health"


def rule_of(app: Flask) -> Rule:
    (rule,) = app.url_map.iter_rules(ENDPOINT)
    return rule


def test_the_route_builds_and_matches_like_any_other_once_registered() -> None:
    app = Flask("route_app")
    view.register(app, "/ops/health")
    assert isinstance(rule_of(app), view.BuildOnFirstUseRule)
    with app.test_request_context():
        assert url_for(ENDPOINT) == "/ops/health"
        assert url_for(ENDPOINT, verbose=1, _external=True) == "http://localhost/ops/health?verbose=1"
        assert url_for(ENDPOINT) == "/ops/health"  # the compiled builder, the second time
    adapter = app.url_map.bind("localhost")
    assert adapter.match("/ops/health") == (ENDPOINT, {})


def test_the_apps_rule_class_is_left_as_it_was() -> None:
    app = Flask("route_app")
    view.register(app, "/health/vault")
    assert "url_rule_class" not in vars(app)
    app.add_url_rule("/other", "other", lambda: "")
    (other,) = app.url_map.iter_rules("other")
    assert type(other) is Rule


def test_an_app_with_its_own_rule_class_gets_its_class_for_the_route_too() -> None:
    class AppRule(Rule):
        pass

    app = Flask("route_app")
    app.url_rule_class = AppRule
    view.register(app, "/health/vault")
    assert type(rule_of(app)) is AppRule
    assert app.url_rule_class is AppRule
    with app.test_request_context():
        assert url_for(ENDPOINT) == "/health/vault"


def test_the_blueprint_is_registered_so_request_blueprint_names_it() -> None:
    app = Flask("route_app")
    view.register(app, "/health/vault")
    assert "vault_health" in app.blueprints
    with app.test_request_context("/health/vault"):
        assert request.blueprint == "vault_health"
