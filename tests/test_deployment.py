"""The deployment files: compose.yaml runs the app on PostgreSQL with named volumes, and the
Dockerfile keeps its HEALTHCHECK (model loaded and the server answering)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_app_and_postgres_with_named_volumes():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    app, db = compose["services"]["app"], compose["services"]["db"]
    assert app["environment"]["DERMSEV_DATABASE_URL"].startswith("postgresql://dermsev:")
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    named = set(compose["volumes"])
    mounts = [v.split(":")[0] for v in app["volumes"] + db["volumes"]]
    assert {"dermsev-data", "dermsev-db"} <= named and {"dermsev-data", "dermsev-db"} <= set(mounts)
    assert db["image"].startswith("postgres:") and "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert all(p.startswith("127.0.0.1:") for p in app["ports"])  # behind the proxy only
    assert app["environment"]["DERMSEV_AUTH"] in ("local", "oidc")


def test_dockerfile_keeps_its_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert "HEALTHCHECK" in text and "/_stcore/health" in text and "dermsev.ready" in text
