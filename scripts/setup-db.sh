#!/usr/bin/env bash
# setup-db.sh [up|down]: PostgreSQL 15 and MariaDB 10.11 on 127.0.0.1 with a throwaway database each
# (Debian 12, root, no systemd). The test user may create databases named cpone_t_* (a fresh one per
# test controller under CLOUDPODS_TEST_DB=pg|mysql; `up` drops the ones left behind). Prints the URLs
# the tests read:
#   CLOUDPODS_TEST_PG_URL=postgresql+psycopg://cpone:cpone-test@127.0.0.1:5432/cpone_test
#   CLOUDPODS_TEST_MYSQL_URL=mysql+pymysql://cpone:cpone-test@127.0.0.1:3306/cpone_test
set -euo pipefail
stop_pid() {  # pidfile process-name signal
  local p; p=$(head -1 "$1" 2>/dev/null) || return 0
  [ "$(cat /proc/"$p"/comm 2>/dev/null)" = "$2" ] && kill -"$3" "$p" || return 0
  for _ in $(seq 300); do [ -e "$1" ] || return 0; sleep 0.1; done; echo "$2 still up" >&2; return 1
}
if [ "${1:-up}" = down ]; then
  stop_pid /var/lib/postgresql/15/main/postmaster.pid postgres INT
  stop_pid /run/mysqld/mysqld.pid mariadbd TERM
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
DB=cpone_test U=cpone P=cpone-test
wait_ok() { for _ in $(seq 60); do "$@" >/dev/null 2>&1 && return; sleep 0.5; done; "$@"; }
need=""
dpkg-query -W -f='${Status}' postgresql-15 2>/dev/null | grep -q "ok installed" || need="$need postgresql-15"
dpkg-query -W -f='${Status}' mariadb-server 2>/dev/null | grep -q "ok installed" || need="$need mariadb-server"
if [ -n "$need" ]; then
  apt-get update -qq -o DPkg::Lock::Timeout=600
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends $need >/dev/null
fi
pg_lsclusters -h | grep -q '^15 *main ' || pg_createcluster 15 main >/dev/null
echo "listen_addresses = '127.0.0.1'" > /etc/postgresql/15/main/conf.d/listen.conf
pg_ctlcluster 15 main start 2>/dev/null || [ $? -eq 2 ]
wait_ok pg_isready -h 127.0.0.1 -p 5432
for d in $(cd / && runuser -u postgres -- psql -Atq -c "SELECT datname FROM pg_database WHERE datname LIKE 'cpone\_t\_%'"); do
  (cd / && runuser -u postgres -- psql -q -c "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)")
done
(cd / && runuser -u postgres -- psql -q -v ON_ERROR_STOP=1) <<SQL
SET client_min_messages = warning;
DROP DATABASE IF EXISTS $DB WITH (FORCE);
DROP ROLE IF EXISTS $U;
CREATE ROLE $U LOGIN CREATEDB PASSWORD '$P';
CREATE DATABASE $DB OWNER $U;
SQL
service mariadb start >/dev/null
wait_ok mysqladmin ping
mariadb -uroot -N -e "SELECT CONCAT('KILL ',id,';') FROM information_schema.processlist WHERE user='$U'" | mariadb -uroot -f 2>/dev/null || true
for d in $(mariadb -uroot -N -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'cpone\\_t\\_%'"); do
  mariadb -uroot -e "DROP DATABASE IF EXISTS \`$d\`"
done
mariadb -uroot <<SQL
SET SESSION lock_wait_timeout = 30;
SET SESSION foreign_key_checks = 0;  -- a left-over schema drops in any table order
CREATE OR REPLACE DATABASE $DB;
CREATE OR REPLACE USER '$U'@'%' IDENTIFIED BY '$P';
GRANT ALL ON $DB.* TO '$U'@'%';
GRANT ALL ON \`cpone\\_t\\_%\`.* TO '$U'@'%';
SQL
echo "CLOUDPODS_TEST_PG_URL=postgresql+psycopg://$U:$P@127.0.0.1:5432/$DB"
echo "CLOUDPODS_TEST_MYSQL_URL=mysql+pymysql://$U:$P@127.0.0.1:3306/$DB"
