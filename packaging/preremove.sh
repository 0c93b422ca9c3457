#!/bin/sh
# Stops agentd before dpkg removes its files, so that no daemon keeps
# running from a deleted binary. dpkg calls prerm with "remove" before a
# removal or purge, and with "upgrade" before an upgrade, when the service
# keeps running until postinstall restarts it.
set -e
case "$1" in
remove | deconfigure)
	if [ -d /run/systemd/system ]; then
		if command -v deb-systemd-invoke >/dev/null; then
			# deb-systemd-invoke honors policy-rc.d, as Debian's own packages do.
			deb-systemd-invoke stop agentd.service >/dev/null || true
		else
			systemctl stop agentd.service || true
		fi
	fi
	;;
esac
