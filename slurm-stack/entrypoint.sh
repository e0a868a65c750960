#!/bin/bash
# Role-parameterised entrypoint of the interCEde Slurm test stack.
#
# Every daemon runs in the foreground and logs to stdout/stderr (no systemd). Configuration and
# secrets come from the stack-internal config volume (/etc/intercede), which the harness fills
# with freshly minted material before any node starts. When any daemon of this container dies
# the container exits, so Docker (and the harness) see the failure instead of a zombie node.
set -euo pipefail

role="${INTERCEDE_ROLE:?set INTERCEDE_ROLE to database, dbd, controller, worker or login}"
cfg="${INTERCEDE_CONFIG_DIR:-/etc/intercede}"
submit_user="${INTERCEDE_SUBMIT_USER:-submit}"
dep_timeout="${INTERCEDE_DEP_TIMEOUT:-180}"
pids=()

log() { echo "[entrypoint:${role}] $*" >&2; }

shutdown() {
    log "stopping"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait || true
    exit 0
}
trap shutdown TERM INT

# Poll a dependency with a deadline: a bounded wait on a real signal, not a fixed sleep.
wait_for() {
    local what="$1"; shift
    local deadline=$((SECONDS + dep_timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "gave up waiting for ${what} after ${dep_timeout}s"
            return 1
        fi
        sleep 0.2
    done
    log "${what} is up"
}

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

spawn() {
    "$@" &
    pids+=("$!")
}

install_slurm_conf() {
    install -d -m 0755 /etc/slurm
    install -m 0644 "${cfg}/slurm.conf" /etc/slurm/slurm.conf
    install -m 0644 "${cfg}/cgroup.conf" /etc/slurm/cgroup.conf
}

start_munge() {
    install -d -o munge -g munge -m 0700 /etc/munge
    install -o munge -g munge -m 0400 "${cfg}/munge.key" /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    rm -f /run/munge/munge.socket.2.lock
    spawn runuser -u munge -- /usr/sbin/munged --foreground --force
    wait_for munged bash -c 'munge -n </dev/null | unmunge'
}

supervise() {
    # Exit as soon as any daemon exits, with its status.
    local status=0
    wait -n || status=$?
    log "a daemon exited (status ${status}); stopping the container"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    exit "${status}"
}

register_accounting() {
    local cluster
    cluster="$(sed -n 's/^ClusterName=//p' /etc/slurm/slurm.conf)"
    if ! wait_for slurmdbd sacctmgr -n -P list cluster; then
        log "slurmdbd unreachable; slurmctld starts without registering ${cluster}"
        return 0
    fi
    # Idempotent: "already exists" is fine on a restart.
    sacctmgr -i add cluster "${cluster}" >/dev/null 2>&1 || true
    sacctmgr -i add account intercede Cluster="${cluster}" \
        Description="interCEde tests" Organization=intercede >/dev/null 2>&1 || true
    sacctmgr -i add user "${submit_user}" Account=intercede Cluster="${cluster}" \
        >/dev/null 2>&1 || true
    sacctmgr -i add user root Account=intercede Cluster="${cluster}" >/dev/null 2>&1 || true
    log "accounting: cluster ${cluster}, account intercede, user ${submit_user} registered"
}

case "${role}" in
database)
    pw="$(cat "${cfg}/db_password")"
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    if [ ! -d /var/lib/mysql/mysql ]; then
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    fi
    init_sql=/run/mysqld/intercede-init.sql
    cat >"${init_sql}" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'%' IDENTIFIED BY '${pw}';
ALTER USER 'slurm'@'%' IDENTIFIED BY '${pw}';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'%';
FLUSH PRIVILEGES;
SQL
    chown mysql:mysql "${init_sql}"
    chmod 0600 "${init_sql}"
    exec mariadbd --user=mysql --datadir=/var/lib/mysql --bind-address=0.0.0.0 \
        --skip-name-resolve --init-file="${init_sql}" \
        --innodb-buffer-pool-size=64M --skip-log-bin
    ;;
dbd)
    install_slurm_conf
    install -o slurm -g slurm -m 0600 "${cfg}/slurmdbd.conf" /etc/slurm/slurmdbd.conf
    start_munge
    wait_for "mariadb on database:3306" tcp_open database 3306
    spawn slurmdbd -D
    ;;
controller)
    install_slurm_conf
    start_munge
    register_accounting
    spawn slurmctld -D -i
    ;;
worker)
    install_slurm_conf
    start_munge
    spawn slurmd -D
    ;;
login)
    install_slurm_conf
    start_munge
    install -m 0600 "${cfg}/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
    install -m 0644 "${cfg}/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
    home="$(getent passwd "${submit_user}" | cut -d: -f6)"
    install -d -o "${submit_user}" -g "${submit_user}" -m 0755 "${home}"
    install -d -o "${submit_user}" -g "${submit_user}" -m 0700 "${home}/.ssh"
    install -o "${submit_user}" -g "${submit_user}" -m 0600 "${cfg}/authorized_keys" \
        "${home}/.ssh/authorized_keys"
    install -d -o "${submit_user}" -g "${submit_user}" -m 0755 "${home}/intercede"
    install -d -m 0755 /etc/ssh/sshd_config.d /run/sshd
    cat >/etc/ssh/sshd_config.d/intercede.conf <<CONF
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers ${submit_user}
MaxStartups 200:30:400
MaxSessions 200
ClientAliveInterval 30
CONF
    spawn /usr/sbin/sshd -D -e
    ;;
*)
    log "unknown role ${role}"
    exit 64
    ;;
esac

log "started"
supervise
