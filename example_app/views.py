from __future__ import annotations

import hmac
import os
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, request, session
from flask_jwt_extended import JWTManager, create_access_token, get_jwt_identity, jwt_required

from flask_vault.jwt import use_vault_jwt_keys

from .models import Product, db

bp = Blueprint("store", __name__)
ENDPOINTS = ["POST /login", "GET /products", "POST /products", "GET /visits", "GET /health/vault", "GET /metrics"]
jwt = JWTManager()
use_vault_jwt_keys(jwt)  # JWTs signed before a JWT_SECRET_KEY rotation stay valid until they expire


@bp.get("/")
def index() -> Any:
    """Where each secret came from (never the values)."""
    from . import vault  # the app's FlaskVault (imported here: the package imports this module)

    return jsonify(
        app="store-erp example",
        secrets={key: source.origin for key, source in vault.sources.items()},
        endpoints=ENDPOINTS,
    )


@bp.post("/login")
def login() -> Any:
    body = request.get_json(silent=True) or {}
    username, password = str(body.get("username", "")), str(body.get("password", ""))
    expected_user = current_app.config["DEMO_USER"]
    expected_password = current_app.config["DEMO_PASSWORD"]
    if not (hmac.compare_digest(username, expected_user) and hmac.compare_digest(password, expected_password)):
        return jsonify(error="bad username or password"), 401
    return jsonify(access_token=create_access_token(identity=username))


@bp.get("/products")
@jwt_required()
def list_products() -> Any:
    products = db.session.scalars(db.select(Product).order_by(Product.id)).all()
    return jsonify(products=[p.as_dict() for p in products], user=get_jwt_identity())


@bp.post("/products")
@jwt_required()
def create_product() -> Any:
    body = request.get_json(silent=True) or {}
    try:
        product = Product(sku=str(body["sku"]), name=str(body["name"]), price=Decimal(str(body["price"])))
    except (KeyError, InvalidOperation):
        return jsonify(error="expected JSON with sku, name and a numeric price"), 400
    db.session.add(product)
    db.session.commit()
    return jsonify(product.as_dict()), 201


@bp.get("/visits")
def visits() -> Any:
    """A counter in the session cookie, signed with SECRET_KEY."""
    session["visits"] = int(session.get("visits", 0)) + 1
    return jsonify(visits=session["visits"])


@bp.get("/metrics")
def metrics() -> Any:
    """Prometheus metrics (with the ``prometheus`` extra). Under gunicorn, set PROMETHEUS_MULTIPROC_DIR
    so that this adds up every worker's values, whichever worker answers (docs/health.md)."""
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
    except ImportError:
        abort(404)
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}
