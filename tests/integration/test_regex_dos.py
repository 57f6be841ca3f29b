"""A route regex cannot be turned against the gateway: matches run on RE2 (linear time, as Envoy's),
so a pattern that makes a backtracking engine take exponential time, `(x+x+)+y`, stays cheap while
clients send the header values that would trigger it, and other routes keep being answered."""

import http.client
import threading

from conftest import REQUEST_TIMEOUT, curl, documents, free_port, gateway_yaml, wait_until

ATTACKERS = 4
NORMAL_REQUESTS = 40
# A run of x's, then a y that is not the end: a backtracking engine tries every way to split the run
# (2^29) before it fails (PCRE2 hit its match limit at ~30 ms a request); RE2 fails in one pass. The
# "yy" defeats the "no y in the value at all" shortcut backtracking engines take.
CRAFTED = "x" * 30 + "yy"


def routes(gateway: str) -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: regex-dos
spec:
  hosts: ["*"]
  gateways: [{gateway}]
  http:
  - match:
    - headers:
        x-token: {{regex: "(x+x+)+y"}}
    route:
    - destination: {{host: guarded, port: {{number: 9080}}}}
  - match:
    - uri: {{prefix: /normal}}
    route:
    - destination: {{host: normal, port: {{number: 9080}}}}
"""


class Attacker(threading.Thread):
    """Sends the crafted header over one keep-alive connection until stopped; counts the answers."""

    def __init__(self, port: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.stop, self.answered, self.error = port, stop, 0, None

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            while not self.stop.is_set():
                connection.request("GET", "/attack", headers={"x-token": CRAFTED})
                reply = connection.getresponse()
                reply.read()
                assert reply.status == 404, reply.status  # no route: the regex did not match
                self.answered += 1
        except Exception as error:  # reported by the test
            self.error = error
        finally:
            connection.close()


def test_gateway_stays_responsive_while_clients_send_a_catastrophic_regex_subject(mesh):
    guarded, normal = mesh.backend("guarded", ["v1"]), mesh.backend("normal", ["v1"])
    port = free_port()
    config = mesh.config_dir(
        {
            "services.yaml": documents(guarded.yaml, normal.yaml),
            "gateway.yaml": documents(gateway_yaml("gw", port, "HTTP"), routes("gw")),
        }
    )
    gateway = mesh.gateway(config, {"http": port})
    # The route regex is live: a value it matches in full reaches its service.
    assert curl(gateway.url("/attack"), "-H", f"x-token: {'x' * 30}y").headers["x-service"] == "guarded"

    stop = threading.Event()
    attackers = [Attacker(port, stop) for _ in range(ATTACKERS)]
    for attacker in attackers:
        attacker.start()
    try:
        wait_until(lambda: all(a.answered >= 3 for a in attackers), REQUEST_TIMEOUT, "every attacker to be answered")
        for index in range(NORMAL_REQUESTS):
            # curl fails the test if no answer comes within the normal request timeout.
            response = curl(gateway.url(f"/normal/{index}"))
            assert response.status == 200, response.text
            assert response.headers["x-service"] == "normal"
        during = [a.answered for a in attackers]
        wait_until(lambda: all(a.answered > d for a, d in zip(attackers, during)), REQUEST_TIMEOUT, "the attack to go on")
    finally:
        stop.set()
        for attacker in attackers:
            attacker.join(REQUEST_TIMEOUT)
    assert not [a.error for a in attackers if a.error], [a.error for a in attackers]
    assert gateway.proc.alive()
