"""The connection settings of a Snowflake warehouse: ``lakeforge.yml`` first, then ``SNOWFLAKE_*`` variables.

Pure functions of the config and the environment (no driver, no network), so the unit tests check them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lakeforge.config.models import SnowflakeWarehouseConfig
from lakeforge.errors import WarehouseError

DEFAULT_DATABASE = "LAKEFORGE"
DEFAULT_SCHEMA = "GOLD"
ENV = {  # setting -> environment variable
    "account": "SNOWFLAKE_ACCOUNT",
    "user": "SNOWFLAKE_USER",
    "role": "SNOWFLAKE_ROLE",
    "warehouse": "SNOWFLAKE_WAREHOUSE",
    "database": "SNOWFLAKE_DATABASE",
    "schema": "SNOWFLAKE_SCHEMA",
    "authenticator": "SNOWFLAKE_AUTHENTICATOR",
    "password": "SNOWFLAKE_PASSWORD",
    "private_key_file": "SNOWFLAKE_PRIVATE_KEY_FILE",
    "private_key_passphrase": "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
}
# authenticators that still need a password or a key from us (the others: SSO in a browser, OAuth, ...)
_CREDENTIAL_AUTHENTICATORS = {"snowflake", "snowflake_jwt", "username_password_mfa"}


@dataclass(frozen=True)
class Settings:
    """Where a connection goes (no secrets: safe to print)."""

    account: str
    user: str
    role: str | None
    warehouse: str | None
    database: str
    schema: str
    authenticator: str | None
    query_tag: str

    def describe(self) -> str:
        return f"account {self.account} as user {self.user} ({self.database}.{self.schema})"


def default_query_tag(project: str) -> str:
    return json.dumps({"app": "lakeforge", "project": project}, separators=(",", ":"))


def settings(config: SnowflakeWarehouseConfig, *, project: str = "lakeforge",
             env: Mapping[str, str] | None = None) -> Settings:
    """Each setting from the config, else its environment variable; account and user are required."""
    env = os.environ if env is None else env

    def get(name: str, value: str | None) -> str | None:
        return value or env.get(ENV[name]) or None

    account, user = get("account", config.account), get("user", config.user)
    missing = [f"{name} ({ENV[name]})" for name, value in (("account", account), ("user", user)) if not value]
    if missing or account is None or user is None:
        raise WarehouseError(
            f"warehouse: {{type: snowflake}} needs the Snowflake {' and '.join(missing)}",
            hint="set SNOWFLAKE_ACCOUNT and SNOWFLAKE_USER (or warehouse.account / warehouse.user in lakeforge.yml)")
    return Settings(
        account=account, user=user, role=get("role", config.role),
        warehouse=get("warehouse", config.compute_warehouse),
        database=get("database", config.database) or DEFAULT_DATABASE,
        schema=get("schema", config.db_schema) or DEFAULT_SCHEMA,
        authenticator=get("authenticator", config.authenticator),
        query_tag=config.query_tag or default_query_tag(project))


def connect_kwargs(config: SnowflakeWarehouseConfig, *, project: str = "lakeforge", base_dir: Path | None = None,
                   env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The keyword arguments of ``snowflake.connector.connect`` (with the password or the key's DER bytes)."""
    env = os.environ if env is None else env
    where = settings(config, project=project, env=env)
    kwargs: dict[str, Any] = {
        "account": where.account, "user": where.user, "database": where.database, "schema": where.schema,
        "autocommit": True,  # the load's transaction is an explicit BEGIN ... COMMIT
        "arrow_number_to_decimal": True,  # NUMBER(p, s) as exact decimals, not floats (verify compares values)
        "session_parameters": {"QUERY_TAG": where.query_tag},
    }
    for name, value in (("role", where.role), ("warehouse", where.warehouse),
                        ("authenticator", where.authenticator), ("host", config.host), ("port", config.port),
                        ("protocol", config.protocol)):
        if value is not None:
            kwargs[name] = value
    password = config.password.get_secret_value() if config.password else env.get(ENV["password"])
    key_file = config.private_key_file or env.get(ENV["private_key_file"])
    passphrase = (config.private_key_passphrase.get_secret_value() if config.private_key_passphrase
                  else env.get(ENV["private_key_passphrase"]))
    if key_file:
        path = Path(key_file).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        kwargs["private_key"] = private_key_der(path, passphrase or None)
    elif password:
        kwargs["password"] = password
    elif where.authenticator is None or where.authenticator.lower() in _CREDENTIAL_AUTHENTICATORS:
        raise WarehouseError(
            f"no Snowflake credentials for user {where.user} (account {where.account})",
            hint="set SNOWFLAKE_PASSWORD, or SNOWFLAKE_PRIVATE_KEY_FILE (and SNOWFLAKE_PRIVATE_KEY_PASSPHRASE when "
                 "the key is encrypted) for key-pair authentication, or SNOWFLAKE_AUTHENTICATOR (e.g. "
                 "externalbrowser); a password belongs in the environment or secrets.yml, not in lakeforge.yml")
    return kwargs


def private_key_der(path: Path, passphrase: str | None) -> bytes:
    """The PEM private key at ``path`` as unencrypted PKCS#8 DER bytes, what the connector's key-pair
    authentication takes."""
    from cryptography.hazmat.primitives import serialization

    hint = ("SNOWFLAKE_PRIVATE_KEY_FILE must name a PEM private key (PKCS#8); set SNOWFLAKE_PRIVATE_KEY_PASSPHRASE "
            "when it is encrypted")
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise WarehouseError(f"cannot read the Snowflake private key {path}: {exc.strerror or exc}",
                             hint=hint) from None
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase.encode() if passphrase else None)
    except (TypeError, ValueError) as exc:  # wrong/missing passphrase, not a PEM key
        raise WarehouseError(f"cannot load the Snowflake private key {path}: {exc}", hint=hint) from None
    return key.private_bytes(encoding=serialization.Encoding.DER, format=serialization.PrivateFormat.PKCS8,
                             encryption_algorithm=serialization.NoEncryption())
