#!/bin/sh
# Cleans up after agentd is removed. A removal keeps all of the user's
# data: /etc/agentd, the sessions, events and outbox in /var/lib/agentd,
# the agentd user and group, and the unit's enablement. A purge also
# deletes /var/lib/agentd and the enablement link, and dpkg deletes the
# configuration files that the package installed. A purge keeps other
# files in /etc/agentd, such as secret files, and the agentd user and
# group, because files elsewhere may still be owned by them.
set -e
case "$1" in
remove)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
	;;
purge)
	rm -rf /var/lib/agentd
	# systemctl enable agentd made this link; the unit it names is gone.
	rm -f /etc/systemd/system/multi-user.target.wants/agentd.service
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
	fi
	;;
esac
