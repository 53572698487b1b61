#!/bin/sh
# Regenerates server/csf.conf from shipped/csf.conf (CSF 15's csf.generic.conf,
# verbatim): the values a host running lfd's port-scan tracking changes, as
# the csf UI or `sed -i` on /etc/csf/csf.conf would. Run from this directory.
set -eu
sed \
  -e 's/^TESTING = "1"/TESTING = "0"/' \
  -e 's/^IPV6 = "0"/IPV6 = "1"/' \
  -e 's/^PORTFLOOD = ""/PORTFLOOD = "22;tcp;5;300,80;tcp;20;5"/' \
  -e 's/^CONNLIMIT = ""/CONNLIMIT = "22;5,80;20"/' \
  -e 's/^LF_ALERT_TO = ""/LF_ALERT_TO = "security@example.org"/' \
  -e 's/^LF_ALERT_FROM = ""/LF_ALERT_FROM = "lfd@server.example.org"/' \
  -e 's/^LF_ALERT_SMTP = ""/LF_ALERT_SMTP = "127.0.0.1"/' \
  -e 's/^DYNDNS = "0"/DYNDNS = "600"/' \
  -e 's/^LF_GLOBAL = "0"/LF_GLOBAL = "3600"/' \
  -e 's|^GLOBAL_DENY = ""|GLOBAL_DENY = "https://lists.example.org/deny.txt"|' \
  -e 's/^CC_DENY = ""/CC_DENY = "CN,RU,AS4134"/' \
  -e 's/^CC_IGNORE = ""/CC_IGNORE = "GB"/' \
  -e 's/^PS_INTERVAL = "0"/PS_INTERVAL = "300"/' \
  -e 's/^PS_PORTS = "0:65535,ICMP"/PS_PORTS = "0:65535,ICMP,BRD"/' \
  ../shipped/csf.conf > csf.conf
