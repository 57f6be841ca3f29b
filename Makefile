# Meshgate: the two set-up commands are `make run` and `make test`.
PREFIX  ?= /usr/local
CONFDIR ?= /etc/meshgate
UNITDIR ?= /etc/systemd/system
SWIFT   ?= swift

.PHONY: run test build release unit-test integration-test install uninstall clean

## make run: install what is missing, build release, start the sample apps and the gateway on conf/.
run: release
	scripts/demo.sh .build/release/meshgate

## make test: the whole suite: Swift unit tests, then integration tests with the real binary and real clients.
test: build
	$(SWIFT) test --skip-build
	python3 -m pytest -q tests/integration

build:
	scripts/install-deps.sh --test
	$(SWIFT) build --build-tests

release:
	scripts/install-deps.sh
	$(SWIFT) build -c release --product meshgate

## make install: binary to $(PREFIX)/bin, conf to $(CONFDIR) (kept if present), unit to $(UNITDIR).
install: release
	install -D -m 0755 .build/release/meshgate $(DESTDIR)$(PREFIX)/bin/meshgate
	@if [ -e $(DESTDIR)$(CONFDIR)/meshgate.yaml ]; then \
		echo "keeping existing $(CONFDIR)"; \
	else \
		install -d -m 0755 $(DESTDIR)$(CONFDIR) && cp -r conf/. $(DESTDIR)$(CONFDIR)/; \
	fi
	install -D -m 0644 systemd/meshgate.service $(DESTDIR)$(UNITDIR)/meshgate.service
	install -D -m 0644 systemd/meshgate-sidecar@.service $(DESTDIR)$(UNITDIR)/meshgate-sidecar@.service
	-systemctl daemon-reload 2>/dev/null
	@echo "installed; start with: systemctl enable --now meshgate"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/meshgate $(DESTDIR)$(UNITDIR)/meshgate.service $(DESTDIR)$(UNITDIR)/meshgate-sidecar@.service

clean:
	rm -rf .build .build-fuzz
