"""`meshgate validate DIR`: every error class of issue 2 item 3 names its file and line; Istio's own
samples and the shipped conf/ validate clean.

Each broken file marks the line the diagnostic must name with `# <-`. The YAML puts everything the
diagnostic could point at (the rule, its field, the value) on that one line, in flow style, so the
expected line does not depend on which of those nodes the validator picks.
"""

import re
import shutil

import pytest

from conftest import ISTIO_SAMPLES, REPO, destination_rule_yaml, documents, resource_yaml, service_yaml

DIAGNOSTIC = re.compile(r"^(?P<file>\S+?):(?P<line>\d+): (?P<severity>error|warning|info): (?P<rest>.*)$")

# Declares what the broken files refer to: services reviews (9080) and tcp-echo (9000), reviews subsets
# v1/v2, and a Gateway `gw` with an HTTP server on 8080 and a TCP server on 31400.
BASE = documents(
    service_yaml("reviews", 9080),
    service_yaml("tcp-echo", 9000, "tcp"),
    destination_rule_yaml("reviews", ["v1", "v2"]),
    resource_yaml(
        "Gateway",
        "gw",
        """\
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
""",
    ),
)


def http_vs(rule_lines: str, name: str) -> str:
    return resource_yaml("VirtualService", name, f'  hosts: ["*"]\n  gateways: [gw]\n  http:\n{rule_lines}')


def tcp_vs(match: str, name: str) -> str:
    """A tcp rule whose match list is `match`, on the marked line."""
    spec = f"""\
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - match: {match}  # <-
    route: [{{destination: {{host: tcp-echo, port: {{number: 9000}}}}}}]
"""
    return resource_yaml("VirtualService", name, spec)


def gateway_servers(servers: str, name: str) -> str:
    return resource_yaml("Gateway", name, f"  selector: {{istio: ingressgateway}}\n  servers:\n{servers}")


# References to undeclared things: Istio accepts them (its analyzer warns), so they are warnings, and
# errors with `validate --strict`.
STRICT_CASES = {
    "unknown-host": http_vs("  - route: [{destination: {host: nosuch, port: {number: 9080}}}]  # <-\n", name="host"),
    "unknown-subset": http_vs("  - route: [{destination: {host: reviews, subset: v9}}]  # <-\n", name="subset"),
    "unknown-gateway": resource_yaml(
        "VirtualService", "gateway", '  hosts: ["*"]\n  gateways: [nosuch-gw]  # <-\n  http:\n  - route: [{destination: {host: reviews}}]\n'
    ),
    "unknown-delegate": http_vs("  - delegate: {name: nosuch}  # <-\n", name="delegating"),
}

ERROR_CASES = {
    "weights-all-zero": http_vs(
        "  - route: [{destination: {host: reviews, subset: v1}, weight: 0}, "
        "{destination: {host: reviews, subset: v2}, weight: 0}]  # <-\n",
        name="weights",
    ),
    "bad-regex": http_vs(
        '  - match: [{uri: {regex: "/ratings/[0-9+"}}]  # <-\n'
        "    route: [{destination: {host: reviews}}]\n",
        name="regex",
    ),
    # RE2 (Envoy's engine) rejects what it cannot match in linear time, and programs over Envoy's size limit.
    "regex-backreference": http_vs(
        '  - match: [{headers: {x-token: {regex: "(a+)\\\\1"}}}]  # <-\n'
        "    route: [{destination: {host: reviews}}]\n",
        name="regex-backreference",
    ),
    "regex-lookahead": http_vs(
        '  - match: [{uri: {regex: "/api(?!/internal).*"}}]  # <-\n'
        "    route: [{destination: {host: reviews}}]\n",
        name="regex-lookahead",
    ),
    "regex-repeat-over-1000": http_vs(
        '  - match: [{uri: {regex: "/a{1001}"}}]  # <-\n'
        "    route: [{destination: {host: reviews}}]\n",
        name="regex-repeat",
    ),
    "regex-program-too-large": http_vs(
        '  - match: [{uri: {regex: "/[a-z]{120}"}}]  # <-\n'
        "    route: [{destination: {host: reviews}}]\n",
        name="regex-large",
    ),
    "yaml-syntax-error": """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: broken: yes  # <-
spec:
  hosts: ["*"]
""",
    "wrong-type": gateway_servers(
        """\
  - port: {number: eighty, name: http, protocol: HTTP}  # <-
    hosts: ["*"]
""",
        name="typed",
    ),
    "unknown-kind": """\
apiVersion: networking.istio.io/v1
kind: VirtualSevice  # <-
metadata:
  name: typo
spec:
  hosts: ["*"]
""",
    "gateway-port-protocol-clash": gateway_servers(
        """\
  - port: {number: 9090, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 9090, name: tcp, protocol: TCP}  # <-
    hosts: ["*"]
""",
        name="clash",
    ),
    "tcp-match-by-authority": tcp_vs("[{port: 31400, authority: {exact: echo.example.com}}]", name="echo-by-host"),
    "tcp-match-by-sni-host": tcp_vs("[{port: 31400, sniHosts: [echo.example.com]}]", name="echo-by-sni"),
}


def marked_line(text: str) -> int:
    lines = [number for number, line in enumerate(text.splitlines(), start=1) if line.endswith("# <-")]
    assert len(lines) == 1, "each case marks exactly one line"
    return lines[0]


def diagnostics(output: str) -> list[re.Match]:
    return [match for line in output.splitlines() if (match := DIAGNOSTIC.match(line))]


def errors_at(output: str, file_name: str, line: int) -> list[re.Match]:
    return [
        d
        for d in diagnostics(output)
        if d["severity"] == "error"
        and int(d["line"]) == line
        and (d["file"] == file_name or d["file"].endswith("/" + file_name))
    ]


def write_dir(directory, files: dict[str, str]):
    directory.mkdir()
    (directory / "meshgate.yaml").write_text("bindAddress: 127.0.0.1\n")
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def test_the_base_config_is_valid(mesh, tmp_path):
    result = mesh.validate(write_dir(tmp_path / "base", {"base.yaml": BASE}))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [d for d in diagnostics(result.stdout) if d["severity"] == "error"]


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_each_error_class_names_its_file_and_line(mesh, tmp_path, case):
    text = ERROR_CASES[case]
    file_name = f"{case}.yaml"
    result = mesh.validate(write_dir(tmp_path / "conf", {"base.yaml": BASE, file_name: text}))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    line = marked_line(text)
    assert errors_at(result.stdout, file_name, line), f"expected an error at {file_name}:{line} in:\n{output}"


def warnings_at(output: str, file_name: str, line: int) -> list[re.Match]:
    return [
        d
        for d in diagnostics(output)
        if d["severity"] == "warning"
        and int(d["line"]) == line
        and (d["file"] == file_name or d["file"].endswith("/" + file_name))
    ]


@pytest.mark.parametrize("case", sorted(STRICT_CASES))
def test_undeclared_references_are_warnings_and_errors_with_strict(mesh, tmp_path, case):
    text = STRICT_CASES[case]
    file_name = f"{case}.yaml"
    directory = write_dir(tmp_path / "conf", {"base.yaml": BASE, file_name: text})
    line = marked_line(text)
    lenient = mesh.validate(directory)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr
    assert warnings_at(lenient.stdout, file_name, line), f"expected a warning at {file_name}:{line} in:\n{lenient.stdout}"
    strict = mesh.validate(directory, "--strict")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert errors_at(strict.stdout, file_name, line), f"expected an error at {file_name}:{line} in:\n{strict.stdout}"


def test_weights_not_summing_to_100_are_relative_with_a_warning_naming_the_sum(mesh, tmp_path):
    text = http_vs(
        "  - route: [{destination: {host: reviews, subset: v1}, weight: 1}, "
        "{destination: {host: reviews, subset: v2}, weight: 3}]  # <-\n",
        name="weights",
    )
    result = mesh.validate(write_dir(tmp_path / "conf", {"base.yaml": BASE, "weights.yaml": text}))
    assert result.returncode == 0, result.stdout + result.stderr
    found = warnings_at(result.stdout, "weights.yaml", marked_line(text))
    assert found and "weights sum to 4, not 100" in found[0]["rest"], result.stdout


def test_regex_errors_carry_re2s_own_message(mesh, tmp_path):
    expected = {
        "regex-backreference": "invalid regex (RE2): invalid escape sequence: \\1",
        "regex-lookahead": "invalid regex (RE2): invalid perl operator: (?!",
        "regex-repeat-over-1000": "invalid regex (RE2): invalid repetition size: {1001}",
        "regex-program-too-large": "> max program size of 100",
    }
    files = {f"{case}.yaml": ERROR_CASES[case] for case in expected}
    result = mesh.validate(write_dir(tmp_path / "conf", {"base.yaml": BASE, **files}))
    assert result.returncode == 1
    for case, message in expected.items():
        found = errors_at(result.stdout, f"{case}.yaml", marked_line(ERROR_CASES[case]))
        assert any(message in d.group(0) for d in found), f"{case}: no '{message}' in:\n{result.stdout}"


def test_every_error_is_reported_in_one_run(mesh, tmp_path):
    files = {f"{case}.yaml": text for case, text in ERROR_CASES.items()}
    result = mesh.validate(write_dir(tmp_path / "conf", {"base.yaml": BASE, **files}))
    assert result.returncode == 1
    missing = [name for name, text in files.items() if not errors_at(result.stdout, name, marked_line(text))]
    assert not missing, f"no error reported for {missing} in:\n{result.stdout}"


def test_kinds_meshgate_cannot_run_are_skipped_with_one_info_line(mesh, tmp_path):
    deployment = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v1
spec:
  replicas: 1
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: bookinfo-reviews
"""
    result = mesh.validate(write_dir(tmp_path / "conf", {"base.yaml": BASE, "kube.yaml": deployment}))
    assert result.returncode == 0, result.stdout + result.stderr
    infos = [d["rest"] for d in diagnostics(result.stdout) if d["severity"] == "info" and d["file"].endswith("kube.yaml")]
    assert len(infos) == 2, result.stdout
    assert "Deployment" in infos[0] and "ServiceAccount" in infos[1], result.stdout


ISTIO_SERVICES = documents(
    service_yaml("tcp-echo", 9000, "tcp"),
    *(service_yaml(name, 9080) for name in ("productpage", "details", "reviews", "ratings")),
)


def test_istio_samples_validate_without_error(mesh, tmp_path):
    directory = tmp_path / "istio"
    directory.mkdir()
    for sample in (
        "tcp-echo/tcp-echo-all-v1.yaml",
        "bookinfo/networking/bookinfo-gateway.yaml",
        "bookinfo/networking/destination-rule-all.yaml",
    ):
        shutil.copy(ISTIO_SAMPLES / sample, directory / sample.replace("/", "-"))
    (directory / "services.yaml").write_text(ISTIO_SERVICES)
    result = mesh.validate(directory)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [d for d in diagnostics(result.stdout) if d["severity"] == "error"], result.stdout


def test_the_shipped_conf_validates_without_error(mesh):
    result = mesh.validate(REPO / "conf")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [d for d in diagnostics(result.stdout) if d["severity"] == "error"], result.stdout
