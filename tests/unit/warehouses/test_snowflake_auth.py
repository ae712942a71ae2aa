"""Snowflake connection settings: lakeforge.yml first, then SNOWFLAKE_* variables; password or key pair (the
connector gets the key's DER bytes); missing settings name the variables to set. No connection is made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lakeforge.config.models import SnowflakeWarehouseConfig
from lakeforge.errors import WarehouseError
from lakeforge.warehouses.snowflake.auth import connect_kwargs, settings

pytestmark = pytest.mark.snowflake


def config(**fields: object) -> SnowflakeWarehouseConfig:
    return SnowflakeWarehouseConfig.model_validate({"type": "snowflake", **fields})


def test_password_from_the_environment_and_defaults() -> None:
    env = {"SNOWFLAKE_ACCOUNT": "xy12345.eu-west-1", "SNOWFLAKE_USER": "loader", "SNOWFLAKE_PASSWORD": "s3cret",
           "SNOWFLAKE_ROLE": "LOADER", "SNOWFLAKE_WAREHOUSE": "LOAD_WH"}
    kwargs = connect_kwargs(config(), project="telemetry", env=env)
    assert kwargs == {
        "account": "xy12345.eu-west-1", "user": "loader", "password": "s3cret", "role": "LOADER",
        "warehouse": "LOAD_WH", "database": "LAKEFORGE", "schema": "GOLD", "autocommit": True,
        "arrow_number_to_decimal": True,
        "session_parameters": {"QUERY_TAG": '{"app":"lakeforge","project":"telemetry"}'},
    }
    assert json.loads(kwargs["session_parameters"]["QUERY_TAG"]) == {"app": "lakeforge", "project": "telemetry"}


def test_the_config_wins_over_the_environment() -> None:
    env = {"SNOWFLAKE_ACCOUNT": "env-account", "SNOWFLAKE_USER": "env-user", "SNOWFLAKE_PASSWORD": "env-pw",
           "SNOWFLAKE_DATABASE": "ENVDB", "SNOWFLAKE_SCHEMA": "ENVSCHEMA"}
    cfg = config(account="acct", user="me", password="pw", database="LF", schema="MART", compute_warehouse="WH",
                 host="127.0.0.1", port=8443, protocol="http", query_tag="nightly")
    kwargs = connect_kwargs(cfg, env=env)
    assert (kwargs["account"], kwargs["user"], kwargs["password"]) == ("acct", "me", "pw")
    assert (kwargs["database"], kwargs["schema"], kwargs["warehouse"]) == ("LF", "MART", "WH")
    assert (kwargs["host"], kwargs["port"], kwargs["protocol"]) == ("127.0.0.1", 8443, "http")
    assert kwargs["session_parameters"] == {"QUERY_TAG": "nightly"}
    assert settings(cfg, env=env).describe() == "account acct as user me (LF.MART)"


def _pem(path: Path, passphrase: bytes | None) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))
    return key


def _der(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_key_pair_from_an_encrypted_pem(tmp_path: Path) -> None:
    key = _pem(tmp_path / "rsa_key.p8", b"open sesame")
    env = {"SNOWFLAKE_ACCOUNT": "acct", "SNOWFLAKE_USER": "svc", "SNOWFLAKE_PRIVATE_KEY_FILE": "rsa_key.p8",
           "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": "open sesame"}
    kwargs = connect_kwargs(config(), base_dir=tmp_path, env=env)  # a relative key file is under the project
    assert isinstance(kwargs["private_key"], bytes) and kwargs["private_key"] == _der(key)
    assert "password" not in kwargs and "private_key_passphrase" not in kwargs
    loaded = serialization.load_der_private_key(kwargs["private_key"], password=None)
    assert loaded.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]

    # from lakeforge.yml / secrets.yml, with a password set too: the key is used
    cfg = config(account="acct", user="svc", private_key_file=str(tmp_path / "rsa_key.p8"),
                 private_key_passphrase="open sesame", password="unused")
    assert connect_kwargs(cfg, env={})["private_key"] == _der(key)


def test_an_unencrypted_key_needs_no_passphrase(tmp_path: Path) -> None:
    key = _pem(tmp_path / "plain.pem", None)
    cfg = config(account="acct", user="svc", private_key_file=str(tmp_path / "plain.pem"))
    assert connect_kwargs(cfg, env={})["private_key"] == _der(key)


def test_a_wrong_passphrase_or_a_missing_key_file_says_which_file(tmp_path: Path) -> None:
    _pem(tmp_path / "rsa_key.p8", b"right")
    cfg = config(account="acct", user="svc", private_key_file=str(tmp_path / "rsa_key.p8"),
                 private_key_passphrase="Tr0ub4dor&3")
    with pytest.raises(WarehouseError, match=r"rsa_key\.p8") as caught:
        connect_kwargs(cfg, env={})
    assert "Tr0ub4dor" not in str(caught.value) and "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE" in str(caught.value)
    with pytest.raises(WarehouseError, match=r"missing\.p8"):
        connect_kwargs(config(account="acct", user="svc", private_key_file=str(tmp_path / "missing.p8")), env={})


def test_missing_account_user_or_credentials_name_the_variables() -> None:
    with pytest.raises(WarehouseError) as caught:
        connect_kwargs(config(), env={})
    message = str(caught.value)
    assert "SNOWFLAKE_ACCOUNT" in message and "SNOWFLAKE_USER" in message

    with pytest.raises(WarehouseError) as caught:
        connect_kwargs(config(account="acct"), env={})
    assert "user (SNOWFLAKE_USER)" in caught.value.message and "account" not in caught.value.message

    with pytest.raises(WarehouseError) as caught:
        connect_kwargs(config(account="acct", user="me"), env={})
    message = str(caught.value)
    assert "credentials" in message
    for variable in ("SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY_FILE", "SNOWFLAKE_AUTHENTICATOR"):
        assert variable in message


def test_sso_needs_no_secret() -> None:
    kwargs = connect_kwargs(config(account="acct", user="me@example.com", authenticator="externalbrowser"), env={})
    assert kwargs["authenticator"] == "externalbrowser"
    assert "password" not in kwargs and "private_key" not in kwargs
