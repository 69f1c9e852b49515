"""Profile loading: schema, error messages, semantic checks, overrides, credentials."""

from pathlib import Path

import pytest

from fivegmc.config import (
    AdminConfig,
    AuthConfig,
    AuthUser,
    LogConfig,
    NumberRange,
    OperatorConfig,
    Profile,
    ProfileError,
    RegistrarConfig,
    SipConfig,
    load_profile,
    load_profile_text,
    password_for,
)

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "profiles" / "lab.toml"
LAB_AUTH = ROOT / "profiles" / "lab-auth.toml"

MINIMAL = """
[operator]
[[operator.number_ranges]]
first = "+8613800000000"
last = "+8613800099999"
kind = "rcs"
"""


def load(text: str, *overrides: str, base_dir: Path | None = None) -> Profile:
    return load_profile_text(text, "x.toml", base_dir, overrides)


def error(text: str, *overrides: str, base_dir: Path | None = None) -> str:
    with pytest.raises(ProfileError) as info:
        load(text, *overrides, base_dir=base_dir)
    return str(info.value)


# -- shipped profiles ---------------------------------------------------------------------------


def test_lab_profile_loads_with_documented_defaults() -> None:
    profile = load_profile(LAB)
    assert profile.operator.name == "lab"
    assert profile.operator.home_domain == "ims.mnc000.mcc460.3gppnetwork.org"
    assert (profile.sip.host, profile.sip.udp_port, profile.sip.tcp_port) == (
        "127.0.0.1",
        5060,
        5060,
    )
    assert profile.sip.tls_port == 5061
    assert not profile.sip.tls_enabled
    assert (profile.admin.host, profile.admin.port) == ("127.0.0.1", 9090)
    assert profile.operator.number_ranges == (
        NumberRange(first="+8613800000000", last="+8613800099999", kind="rcs"),
        NumberRange(first="+8613900000000", last="+8613900009999", kind="sms_only"),
    )
    assert not profile.auth.enabled
    # The file spells out the code defaults; the two must not drift apart.
    assert profile.sip == SipConfig()
    assert profile.registrar == RegistrarConfig()
    assert profile.admin == AdminConfig()
    assert profile.log == LogConfig()


def test_lab_auth_profile_loads() -> None:
    profile = load_profile(LAB_AUTH)
    assert profile.auth.enabled
    assert set(profile.auth.algorithms) == {"SHA-256", "MD5"}
    assert all(r.password_template == "lab-{number}" for r in profile.operator.number_ranges)
    assert password_for(profile, "+8613900000042") == "lab-+8613900000042"
    assert profile.operator.number_ranges == tuple(
        NumberRange(first=r.first, last=r.last, kind=r.kind, password_template="lab-{number}")
        for r in load_profile(LAB).operator.number_ranges
    )


def test_embedded_default_equals_lab_profile() -> None:
    assert load_profile() == load_profile(LAB)
    assert load_profile(None, ["sip.udp_port=0"]).sip.udp_port == 0


def test_realm_defaults_to_home_domain() -> None:
    profile = load(MINIMAL + "[auth]\nenabled = true\n", "operator.home_domain=example.org")
    assert profile.auth.realm == "example.org"
    assert AuthConfig().effective_realm(OperatorConfig(home_domain="a.test")) == "a.test"
    assert AuthConfig(realm="r").effective_realm(OperatorConfig()) == "r"


def test_missing_file_and_bad_toml() -> None:
    with pytest.raises(ProfileError, match=r"nope\.toml: cannot read profile"):
        load_profile("nope.toml")
    assert error("[sip\n").startswith("x.toml: invalid TOML")


# -- decode errors name file, key path and expectation ------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(MINIMAL + "[sipp]\nudp_port = 1\n")
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert message.startswith(f"{path}: sipp: unknown key")
    assert "operator, sip, registrar" in message


def test_unknown_nested_key() -> None:
    assert error(MINIMAL + "[sip]\nudp_prot = 1\n").startswith("x.toml: sip.udp_prot: unknown key")
    bad_range = MINIMAL + '[[operator.number_ranges]]\nfirst="+1"\nlast="+1"\nkind="rcs"\nx=1\n'
    assert error(bad_range).startswith("x.toml: operator.number_ranges[1].x: unknown key")


def test_wrong_type_names_key_and_type() -> None:
    assert error(MINIMAL + '[sip]\nudp_port = "5060"\n') == (
        "x.toml: sip.udp_port: expected int, got str"
    )
    assert error(MINIMAL + "[sip]\nenable_tcp = 1\n") == (
        "x.toml: sip.enable_tcp: expected bool, got int"
    )
    assert error(MINIMAL + '[auth]\nalgorithms = "MD5"\n') == (
        "x.toml: auth.algorithms: expected array, got str"
    )
    assert error("operator = 1\n") == "x.toml: operator: expected table, got int"


def test_bad_literal_lists_allowed_values() -> None:
    text = MINIMAL.replace('kind = "rcs"', 'kind = "mms"')
    assert error(text) == (
        "x.toml: operator.number_ranges[0].kind: expected one of 'rcs', 'sms_only', got 'mms'"
    )
    assert error(MINIMAL + '[log]\nformat = "xml"\n') == (
        "x.toml: log.format: expected one of 'json', 'console', got 'xml'"
    )


def test_missing_required_key() -> None:
    assert error("") == "x.toml: operator: required key missing"
    assert error('[operator]\n[[operator.number_ranges]]\nfirst="+123456"\nkind="rcs"\n') == (
        "x.toml: operator.number_ranges[0].last: required key missing"
    )


# -- semantic checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("[sip]\nudp_port = 70000\n", "sip.udp_port: expected a port 0-65535"),
        ("[sip]\ntcp_port = -1\n", "sip.tcp_port: expected a port 0-65535"),
        ("[sip]\ntls_port = 65536\n", "sip.tls_port: expected a port 0-65535"),
        ("[admin]\nport = 99999\n", "admin.port: expected a port 0-65535"),
        (
            "[registrar]\nmin_expires = 100\ndefault_expires = 50\n",
            "registrar.default_expires: expected min_expires <= default_expires <= max_expires",
        ),
        (
            "[registrar]\ndefault_expires = 8000\n",
            "registrar.default_expires: expected min_expires <= default_expires <= max_expires",
        ),
        ("[sip]\nt1_ms = 0\n", "sip.t1_ms: expected a positive value, got 0"),
        ("[sip]\nt2_ms = -5\n", "sip.t2_ms: expected a positive value"),
        ("[sip]\nt4_ms = 0\n", "sip.t4_ms: expected a positive value"),
        ("[sip]\nt1_ms = 5000\nt2_ms = 4000\n", "sip.t1_ms: expected t1_ms <= t2_ms"),
        ("[sip]\nmax_message_size = 1023\n", "sip.max_message_size: expected 1024-1048576"),
        ("[sip]\nmax_message_size = 1048577\n", "sip.max_message_size: expected 1024-1048576"),
        ("[sip]\nmax_forwards = 0\n", "sip.max_forwards: expected 1-255"),
        ("[auth]\nalgorithms = []\n", "auth.algorithms: expected at least one of MD5, SHA-256"),
        (
            '[auth]\nalgorithms = ["SHA-256", "SHA-512"]\n',
            "auth.algorithms[1]: expected one of MD5, SHA-256, got 'SHA-512'",
        ),
        ('[auth]\nalgorithms = ["MD5", "MD5"]\n', "auth.algorithms[1]: MD5 listed twice"),
        ('[log]\nlevel = "TRACE"\n', "log.level: expected one of DEBUG, INFO, WARNING, ERROR"),
        (
            "[sip]\nenable_udp = false\nenable_tcp = false\n",
            "sip: no SIP listener",
        ),
        ("[admin]\nport = 5060\n", "admin.port: port 5060 is already used by sip.tcp_port"),
    ],
)
def test_semantic_checks(extra: str, expected: str) -> None:
    assert f"x.toml: {expected}" in error(MINIMAL + extra)


def test_ports_zero_are_ephemeral_and_allowed() -> None:
    profile = load(MINIMAL, "sip.udp_port=0", "sip.tcp_port=0", "admin.port=0")
    assert (profile.sip.udp_port, profile.sip.tcp_port, profile.admin.port) == (0, 0, 0)


def test_admin_port_clash_ignored_when_tcp_disabled() -> None:
    assert load(MINIMAL, "admin.port=5060", "sip.enable_tcp=false").admin.port == 5060


def number_ranges(*ranges: tuple[str, str]) -> str:
    return "[operator]\n" + "".join(
        f'[[operator.number_ranges]]\nfirst = "{a}"\nlast = "{b}"\nkind = "rcs"\n'
        for a, b in ranges
    )


@pytest.mark.parametrize(
    ("ranges", "expected"),
    [
        (
            (("8613800000000", "+8613800000001"),),
            "operator.number_ranges[0].first: expected an E.164",
        ),
        ((("+12345", "+12345"),), "operator.number_ranges[0].first: expected an E.164"),
        ((("+1234567890123456", "+1234567890123456"),), "[0].first: expected an E.164"),
        ((("+123456", "+12345a"),), "operator.number_ranges[0].last: expected an E.164"),
        ((("+1234567", "+123456"),), "operator.number_ranges[0]: first +1234567 and last"),
        ((("+123457", "+123456"),), "operator.number_ranges[0]: first +123457 is after last"),
        (
            (("+8613800000000", "+8613800099999"), ("+8613800099999", "+8613800100000")),
            "operator.number_ranges[1]: +8613800099999-+8613800100000 overlaps "
            "operator.number_ranges[0]",
        ),
        (
            (("+8613800050000", "+8613800050001"), ("+8613800000000", "+8613800099999")),
            "operator.number_ranges[0]: +8613800050000-+8613800050001 overlaps "
            "operator.number_ranges[1]",
        ),
        (
            (
                ("+8613800000000", "+8613800099999"),
                ("+8613800000010", "+8613800000019"),
                ("+8613800000050", "+8613800000059"),
            ),
            "operator.number_ranges[2]: +8613800000050-+8613800000059 overlaps "
            "operator.number_ranges[0]",
        ),
    ],
)
def test_number_range_checks(ranges: tuple[tuple[str, str], ...], expected: str) -> None:
    assert expected in error(number_ranges(*ranges))


def test_adjacent_and_different_length_ranges_do_not_overlap() -> None:
    text = number_ranges(
        ("+8613800000000", "+8613800000009"),
        ("+8613800000010", "+8613800000019"),
        ("+861380000", "+861389999"),
    )
    assert len(load(text).operator.number_ranges) == 3


def test_tls_cert_and_key(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "node.crt").write_text("cert")
    (tmp_path / "certs" / "node.key").write_text("key")
    tls = '[sip]\ntls_cert = "certs/node.crt"\ntls_key = "certs/node.key"\n'

    profile = load(MINIMAL + tls, base_dir=tmp_path)
    assert profile.sip.tls_enabled
    assert profile.sip.tls_cert == str(tmp_path / "certs" / "node.crt")
    assert profile.sip.tls_key == str(tmp_path / "certs" / "node.key")

    path = tmp_path / "p.toml"
    path.write_text(MINIMAL + tls)
    assert load_profile(path).sip == profile.sip

    only_cert = '[sip]\ntls_cert = "certs/node.crt"\n'
    assert "sip.tls_key: expected sip.tls_cert and sip.tls_key to be set together" in error(
        MINIMAL + only_cert, base_dir=tmp_path
    )
    missing = error(MINIMAL + tls, base_dir=tmp_path / "elsewhere")
    assert "x.toml: sip.tls_cert: file not found" in missing
    assert "x.toml: sip.tls_key: file not found" in missing


def test_tls_port_clash_only_when_tls_enabled(tmp_path: Path) -> None:
    (tmp_path / "c").write_text("c")
    (tmp_path / "k").write_text("k")
    assert load(MINIMAL, "sip.tls_port=5060").sip.tls_port == 5060
    assert "sip.tls_port: port 5060 is already used by sip.tcp_port" in error(
        MINIMAL, "sip.tls_port=5060", "sip.tls_cert=c", "sip.tls_key=k", base_dir=tmp_path
    )


def test_auth_users_must_be_provisioned() -> None:
    users = (
        '[auth]\n[[auth.users]]\nnumber = "+8613800000001"\npassword = "a"\n'
        '[[auth.users]]\nnumber = "+8613700000001"\npassword = "b"\n'
        '[[auth.users]]\nnumber = "+8613800000001"\npassword = "c"\n'
        '[[auth.users]]\nnumber = "13800000001"\npassword = "d"\n'
    )
    message = error(MINIMAL + users)
    assert "x.toml: auth.users[1].number: +8613700000001 is not in any operator.number_ranges" in (
        message
    )
    assert "x.toml: auth.users[2].number: +8613800000001 already in auth.users[0]" in message
    assert "x.toml: auth.users[3].number: expected an E.164 number" in message
    assert "auth.users[0]" not in message.split("already in")[0]


def test_all_semantic_problems_reported_together() -> None:
    with pytest.raises(ProfileError) as info:
        load(MINIMAL, "sip.udp_port=-1", 'log.level="x"')
    assert info.value.source == "x.toml"
    assert len(info.value.problems) == 2
    assert str(info.value).count("\n") == 1


# -- overrides ------------------------------------------------------------------------------------


def test_override_int_bool_string_list() -> None:
    profile = load(
        MINIMAL,
        "sip.udp_port=5070",
        "sip.enable_tcp=false",
        "sip.host=10.0.0.1",
        'operator.name="op-a"',
        'auth.algorithms=["MD5"]',
        "log.level = DEBUG",
        "operator.number_ranges[0].password_template=pw-{number}",
    )
    assert profile.sip.udp_port == 5070
    assert profile.sip.enable_tcp is False
    assert profile.sip.host == "10.0.0.1"
    assert profile.operator.name == "op-a"
    assert profile.auth.algorithms == ("MD5",)
    assert profile.log.level == "DEBUG"
    assert password_for(profile, "+8613800000007") == "pw-+8613800000007"


def test_override_creates_known_table_absent_from_file() -> None:
    assert load(MINIMAL, "registrar.max_expires=9000").registrar.max_expires == 9000


def test_override_unknown_keys_rejected() -> None:
    assert error(MINIMAL, "sip.newtable.x=1") == (
        "x.toml: sip.newtable: unknown key (expected one of: host, udp_port, tcp_port, tls_port, "
        "tls_cert, tls_key, enable_udp, enable_tcp, max_message_size, t1_ms, t2_ms, t4_ms, "
        "max_forwards, tcp_idle_timeout_s, max_tcp_connections, server_header, "
        "overload_backlog_bytes, max_pending_relays, overload_retry_after_s) "
        "(from --set 'sip.newtable.x=1')"
    )
    assert error(MINIMAL, "nothere.x=1").startswith("x.toml: nothere: unknown key")
    assert error(MINIMAL, "sip.udp_prot=1").startswith("x.toml: sip.udp_prot: unknown key")


def test_override_wrong_type_names_override() -> None:
    assert error(MINIMAL, "sip.udp_port=abc") == (
        "x.toml: sip.udp_port: expected int, got str (from --set 'sip.udp_port=abc')"
    )
    assert "(from --set 'sip.udp_port=70000')" in error(MINIMAL, "sip.udp_port=70000")


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("sip.udp_port", "expected dotted.key=value"),
        ("=5", "expected a dotted key"),
        ("sip..udp_port=5", "expected a dotted key"),
        ("sip udp=5", "expected a dotted key"),
        ("operator.name.x=5", "operator.name is not a table"),
        ("operator.number_ranges[5].kind=rcs", "operator.number_ranges has 1 element(s), no [5]"),
        ("operator[0]=1", "operator is not an array"),
        ("auth.users[0].number=x", "auth.users is not set, cannot index it"),
    ],
)
def test_override_bad_syntax(item: str, expected: str) -> None:
    text = MINIMAL.replace("[operator]", '[operator]\nname = "lab"')
    assert error(text, item).startswith(f"x.toml: --set {item!r}: {expected}")


def test_override_applies_in_order() -> None:
    assert load(MINIMAL, "sip.udp_port=1", "sip.udp_port=2").sip.udp_port == 2


# -- credentials ----------------------------------------------------------------------------------


def test_password_for() -> None:
    profile = Profile(
        operator=OperatorConfig(
            number_ranges=(
                NumberRange(
                    first="+8613800000000",
                    last="+8613800099999",
                    kind="rcs",
                    password_template="lab-{number}",
                ),
                NumberRange(first="+8613900000000", last="+8613900009999", kind="sms_only"),
            )
        ),
        auth=AuthConfig(users=(AuthUser(number="+8613800000001", password="explicit"),)),
    )
    assert password_for(profile, "+8613800000001") == "explicit"
    assert password_for(profile, "+8613800000002") == "lab-+8613800000002"
    assert password_for(profile, "+8613900000001") is None  # range without template
    assert password_for(profile, "+8613700000001") is None  # not provisioned
    assert password_for(profile, "+86138000000020") is None  # longer number, not in range
    assert password_for(load_profile(LAB), "+8613800000002") is None


def test_range_lookup() -> None:
    operator = load_profile(LAB).operator
    found = operator.range_for("+8613900009999")
    assert found is not None and found.kind == "sms_only"
    assert operator.range_for("+8613900010000") is None


# -- [[routes]] and [maap] ----------------------------------------------------------------------


def test_lab_profile_ships_a_chatbot_per_dialect() -> None:
    from fivegmc.config import load_profile

    profile = load_profile(None)
    assert {bot.dialect for bot in profile.maap.chatbots} == {"gsma", "ctcu", "cmcc"}
    assert profile.maap.port == 8080


@pytest.mark.parametrize(("override", "key"), [
    ("routes=[{domain='x.test', next_hop='http://x'}]", "routes[0].next_hop"),
    ("maap.server_root='rcs/'", "maap.server_root"),
    ("maap.chatbots[0].uri='labbot'", "maap.chatbots[0].uri"),
    ("maap.chatbots[1].id='labbot'", "maap.chatbots[1].id"),
    ("maap.chatbots[0].webhook='ftp://x'", "maap.chatbots[0].webhook"),
    ("maap.webhook_retry_max_s=0.5", "maap.webhook_retry_max_s"),
])
def test_bad_routes_and_maap_settings_name_the_key(override: str, key: str) -> None:
    from fivegmc.config import ProfileError, load_profile

    with pytest.raises(ProfileError) as err:
        load_profile(None, (override,))
    assert any(p.startswith(key) for p in err.value.problems), err.value.problems
