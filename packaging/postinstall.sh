#!/bin/sh
# Makes systemd read the unit. A first install does not start the service:
# edit /etc/agentd/agentd.yaml first, then run systemctl enable --now agentd.
# An upgrade restarts the service when it runs, so that the new binary
# serves.
set -e
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	# dpkg passes "configure" and the old version for an upgrade.
	if [ "$1" = configure ] && [ -n "$2" ]; then
		systemctl try-restart agentd.service || true
	fi
fi
