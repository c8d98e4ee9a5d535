# Zoha: build, test, install.
#
# make            build the release binary
# make run        start Zoha in the foreground on a demo setup (no root needed)
# make test       unit and integration tests, formatting, lints, documentation checks
#                 (make check is the same)
# make e2e        end-to-end test with real Postfix and Courier IMAP (root, installs packages)
# make bench      throughput against Dovecot LMTP (root, installs packages)
# make install    install into $(DESTDIR)$(PREFIX); make uninstall removes it again

PREFIX     ?= /usr/local
sbindir    ?= $(PREFIX)/sbin
mandir     ?= $(PREFIX)/share/man
sysconfdir ?= /etc
docdir     ?= $(PREFIX)/share/doc/zoha
DESTDIR    ?=
CARGO      ?= cargo
INSTALL    ?= install

BINARY  = $(or $(CARGO_TARGET_DIR),target)/release/zoha
MANPAGES = man/zoha.8 man/zoha.conf.5 man/zoha-userdb.5

.PHONY: all build run test check unit lint check-docs install-check e2e bench install uninstall clean

all: build

build:
	$(CARGO) build --release --locked

$(BINARY): build

run: build
	sh contrib/demo.sh

test: lint check-docs unit install-check

# The name many packaging tools call.
check: test

unit:
	$(CARGO) test --locked --release

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

check-docs: build
	sh tests/check-docs.sh $(BINARY)

install-check: build
	sh tests/install.sh $(BINARY)

e2e: build
	ZOHA=$(BINARY) bash tests/e2e/run.sh

bench: build
	ZOHA=$(BINARY) bash tests/bench/lmtp-throughput.sh

install:
	@test -x $(BINARY) || { echo "$(BINARY) is missing: run make first (as the user with the Rust toolchain)"; exit 1; }
	$(INSTALL) -d $(DESTDIR)$(sbindir) $(DESTDIR)$(mandir)/man8 $(DESTDIR)$(mandir)/man5 \
		$(DESTDIR)$(sysconfdir)/zoha $(DESTDIR)$(docdir)
	$(INSTALL) -m 0755 $(BINARY) $(DESTDIR)$(sbindir)/zoha
	$(INSTALL) -m 0644 man/zoha.8 $(DESTDIR)$(mandir)/man8/zoha.8
	$(INSTALL) -m 0644 man/zoha.conf.5 $(DESTDIR)$(mandir)/man5/zoha.conf.5
	$(INSTALL) -m 0644 man/zoha-userdb.5 $(DESTDIR)$(mandir)/man5/zoha-userdb.5
	$(INSTALL) -m 0644 zoha.conf.example $(DESTDIR)$(sysconfdir)/zoha/zoha.conf.example
	@if [ ! -e $(DESTDIR)$(sysconfdir)/zoha/zoha.conf ]; then \
		$(INSTALL) -m 0644 zoha.conf.example $(DESTDIR)$(sysconfdir)/zoha/zoha.conf; \
	else \
		echo "keeping the existing $(DESTDIR)$(sysconfdir)/zoha/zoha.conf"; \
	fi
	$(INSTALL) -m 0644 README.md $(DESTDIR)$(docdir)/README.md
	$(INSTALL) -d $(DESTDIR)$(docdir)/contrib
	cp -R contrib/. $(DESTDIR)$(docdir)/contrib/
	rm -f $(DESTDIR)$(docdir)/contrib/demo.sh

uninstall:
	rm -f $(DESTDIR)$(sbindir)/zoha $(DESTDIR)$(mandir)/man8/zoha.8 \
		$(DESTDIR)$(mandir)/man5/zoha.conf.5 $(DESTDIR)$(mandir)/man5/zoha-userdb.5 \
		$(DESTDIR)$(sysconfdir)/zoha/zoha.conf.example
	rm -rf $(DESTDIR)$(docdir)
	@echo "$(DESTDIR)$(sysconfdir)/zoha/zoha.conf is left in place if it exists"

clean:
	$(CARGO) clean
