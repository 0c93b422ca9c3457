#!/bin/sh
# Creates the agentd system user before the files owned by its group land.
set -e
if ! getent group agentd >/dev/null; then
	addgroup --system agentd
fi
if ! getent passwd agentd >/dev/null; then
	adduser --system --ingroup agentd --home /var/lib/agentd --no-create-home agentd
fi
