#!/bin/sh
# The board's start: its own host key, the authorized key from
# $TESTBED_AUTHORIZED_KEY, then sshd in the foreground (logs on stderr).
set -eu
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
install -d -m 700 -o testbed -g testbed /home/testbed/.ssh
printf '%s\n' "${TESTBED_AUTHORIZED_KEY:?the public key that may log in}" >/home/testbed/.ssh/authorized_keys
chown testbed:testbed /home/testbed/.ssh/authorized_keys
chmod 600 /home/testbed/.ssh/authorized_keys
exec /usr/sbin/sshd -D -e
