#!/usr/bin/env bash
# cpu.sh PGID: CPU time (ms, user + system) used so far by every process of
# process group PGID (a server started with setsid: wrangler, workerd, …).
pgid=$1 total=0
tck=$(getconf CLK_TCK)
for stat in /proc/[0-9]*/stat; do
  read -r -a f < "$stat" 2>/dev/null || continue
  # Fields after the command name (which may hold spaces): find ") ".
  line=$(cat "$stat" 2>/dev/null) || continue
  rest=${line##*) }
  read -r -a r <<< "$rest"
  # r[2] = pgrp, r[11] = utime, r[12] = stime (fields 5, 14, 15 of stat)
  [[ ${r[2]} == "$pgid" ]] && total=$(( total + r[11] + r[12] ))
done
echo $(( total * 1000 / tck ))
