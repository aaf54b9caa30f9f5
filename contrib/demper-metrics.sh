#!/usr/bin/env bash
# demper-metrics.sh: a tiny Prometheus endpoint for demper.metrics(), for when postgres_exporter is
# not at hand. Serves one HTTP response per connection with socat (Debian package socat):
#   socat TCP-LISTEN:9187,reuseaddr,fork EXEC:/usr/local/bin/demper-metrics.sh
# Connection settings come from the usual PG* variables; the role needs demper_reader.
set -euo pipefail
body=$(psql -XAtq -c "SELECT demper.metrics()" 2>/dev/null) || {
  printf 'HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\ndemper metrics unavailable\n'
  exit 0
}
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: %d\r\n\r\n%s\n' \
  "$(( ${#body} + 1 ))" "$body"
