#!/usr/bin/env bash
# Call benchmark of homeline (issue 4): the release binary between SIPp playing the PBX and
# SIPp playing the operators, everything on loopback, in two phases.
#
#   setup   Calls per second set up end to end. Each run starts a fresh homeline with AGENTS
#           operators in the queue `support` (longest-idle, wrap_up = "0s", answer = ANSWER),
#           registers them all from one SIPp on 127.0.0.2 (operator.xml: digest MD5, each
#           binding with that SIPp's address as Contact; its out-of-call scenario
#           operator_answer.xml answers every INVITE homeline sends: 180, 200, then BYE -> 200),
#           then the PBX (pbx.xml, SIPp on 127.0.0.1, the trunk's allowed source) calls 8000 at
#           RATE calls/s for DURATION s, each call talking TALK_MS ms before its BYE. Every call
#           goes through the routing decision, the allocation of 4 RTP ports and a media relay
#           (SDP on both legs; no RTP is sent in this phase). A call counts as successful when
#           the PBX's SIPp completed it (with answer = "on_agent" its 200 comes only once an
#           operator answered) and homeline logged it `Answered`; failed = calls asked -
#           min(PBX successes, Answered outcomes). A run is clean with < 0.1 % failed and >= 90 %
#           of the asked rate achieved; the highest clean rate is the result. After the listed
#           RATES, a clean top rate is doubled up to MAX_RATE; the first unclean run ends the
#           search, then REFINE runs bisect between the highest clean and lowest unclean rate.
#           During every run dumpcap captures the INVITEs on lo (a BPF filter on the payload's
#           first bytes, so only INVITEs reach it), from which homeline's latency is taken per
#           call: from the PBX's INVITE reaching homeline's port to homeline's INVITE to the
#           operator (kernel timestamps on lo), paired by the caller's number (the From user,
#           unique per call, which homeline passes on); p50, p90, p99, max per run.
#   media   homeline's CPU per bridged call with RTP: a fresh homeline, the operators'
#           out-of-call scenario operator_answer_rtp.xml (streams a 660 Hz PCMU WAV back until
#           the BYE), the PBX pbx_rtp.xml (streams 1 kHz PCMU) placing RTP_CALLS calls at
#           RTP_RATE calls/s that all stay up until the window is over. Once every call is
#           on_call and SETTLE s have passed, homeline's utime + stime (/proc/PID/stat) is read
#           over WINDOW s, with the host's UDP counters (/proc/net/snmp). Packets relayed come
#           from homeline's relay reports (`call media ended`: forwarded per leg over the
#           call's talk time, summed over calls: packets/s while all are up); the host's UDP
#           datagrams received in the window, halved (each relayed packet is received once by
#           homeline and once by a SIPp), are the cross-check. Results: CPU µs per relayed
#           packet and % of one CPU per 100 calls. (SIPp 3.6.1 streams every call of one
#           process from one port; homeline still has its own ports per call and leg.)
#
#   bash benches/calls/run.sh                       # ~3 min after the build: both phases
#   DURATION=5 RATES="100" MAX_RATE=0 REFINE=0 PHASES=setup bash benches/calls/run.sh
#
# Environment (defaults in brackets):
#   PHASES        which phases, in order [setup media]
#   DURATION      seconds per rate [10]
#   RATES         calls/s to run first [100 400]
#   MAX_RATE      double a clean top rate up to this; 0: only the listed rates [3200]
#   REFINE        bisection runs after the first unclean rate [2]
#   TALK_MS       talk time of a call in the setup phase [1000]
#   AGENTS        operators registered [4000]. Calls at once are about RATE * (TALK_MS + a
#                 few ms): with too few operators calls wait in the queue (wait99_ms grows),
#                 hold their RTP ports longer and the run measures the operators' shortage
#   ANSWER        the queue's `answer`: on_agent or on_enqueue [on_agent]
#   LATENCY       1: capture INVITEs with dumpcap for the latency; 0: no capture [1]
#   RTP_CALLS     concurrent RTP calls in the media phase [200]
#   RTP_RATE      calls/s at which they are placed [50]
#   SETTLE        seconds after the last call is bridged before the window [3]
#   WINDOW        seconds of the CPU window [15]
#   LOG_LEVEL     homeline's log level; the script reads `call outcome`, `operator state`
#                 and `call media ended`, which need homeline::calls at info [info]
#   HOMELINE_BIN  a homeline binary to use instead of building target/release/homeline
#   OUT           where configurations, captures, SIPp statistics and logs go
#                 [target/tmp/calls-bench]
#
# Setup table: rate asked; calls asked; the PBX's successful calls; calls homeline logged
# Answered; failed and %; the rate the PBX's INVITEs came at (from the capture); SIPp's
# retransmissions; homeline's CPU ms during the run and µs per successful call; the PBX's and
# the operators' SIPp CPU in % of one CPU; SIPp's mean INVITE -> 200 (1 ms resolution); p99
# of the calls' queue wait (homeline's wait_ms: > a few ms means operators ran short or
# homeline fell behind); the latency pairs, p50, p90, p99, max in ms; homeline's WARN/ERROR
# lines (e.g. "no free RTP ports", answered 503); homeline's RSS at the end (finished SIP
# transactions are kept 32 s).
#
# Output: progress on stderr; on stdout a table per phase and a summary, then one JSON line
# per phase: {"phase":"setup","max_clean_rate":N,...,"runs":[...]} and
# {"phase":"media","calls":200,"cpu_us_per_packet":X,"cpu_pct_per_100_calls":Y,...}.
# homeline and both SIPps share the machine's CPUs; each run reports their CPU use too.
# Needs sipp (Debian `sip-tester`, 3.6.1), python3, timeout and, for the latency, dumpcap
# (Debian `tshark`; capturing needs root or the `wireshark` group). Every process it starts is
# stopped on exit; each SIPp run is bounded by `timeout`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
HERE=$ROOT/benches/calls
PY=$HERE/analyze.py

PHASES=${PHASES:-setup media}
DURATION=${DURATION:-10}
RATES=${RATES:-100 400}
MAX_RATE=${MAX_RATE:-3200}
REFINE=${REFINE:-2}
TALK_MS=${TALK_MS:-1000}
AGENTS=${AGENTS:-4000}
ANSWER=${ANSWER:-on_agent}
LATENCY=${LATENCY:-1}
RTP_CALLS=${RTP_CALLS:-200}
RTP_RATE=${RTP_RATE:-50}
SETTLE=${SETTLE:-3}
WINDOW=${WINDOW:-15}
LOG_LEVEL=${LOG_LEVEL:-info}
OUT=${OUT:-$ROOT/target/tmp/calls-bench}
RECV_TIMEOUT_MS=8000
REG_RATE=2000
CLK_TCK=$(getconf CLK_TCK)
PBX_IP=127.0.0.1
AGENT_IP=127.0.0.2
# homeline's RTP ports: below the ephemeral range (where SIPp's and the probes' ports come
# from); 4 per call: 5,692 calls at once.
RTP_MIN=10000
RTP_MAX=32767

say() { echo "calls-bench: $*" >&2; }
die() {
    say "$*"
    exit 1
}

for tool in sipp python3 timeout; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "\`$tool\` is not installed (sipp: Debian package sip-tester)"
done
if ((LATENCY)); then
    command -v dumpcap >/dev/null 2>&1 ||
        die "\`dumpcap\` is not installed (Debian package tshark); or run with LATENCY=0"
fi
((AGENTS >= 1 && AGENTS <= 10000)) || die "AGENTS must be 1..10000"
((RTP_CALLS <= AGENTS)) || die "RTP_CALLS must not exceed AGENTS"
[[ $ANSWER == on_agent || $ANSWER == on_enqueue ]] || die "ANSWER: on_agent or on_enqueue"

if [[ -n ${HOMELINE_BIN:-} ]]; then
    BIN=$HOMELINE_BIN
else
    say "cargo build --release -p homeline"
    cargo build --release -p homeline >&2
    BIN=$ROOT/target/release/homeline
fi
[[ -x $BIN ]] || die "no homeline binary at $BIN"

rm -rf "$OUT"
mkdir -p "$OUT"
python3 "$PY" wavs "$OUT"

free_port() { python3 "$PY" free-ports "${1:-127.0.0.1}" "${2:-1}"; }
SIP_PORT=$(free_port)
HTTP_PORT=$(free_port)
WEBRTC_PORT=$(free_port)
PBX_PORT=$(free_port $PBX_IP)

# ---- configuration: MD5 (SIPp), the trunk from 127.0.0.1, AGENTS operators ----
CONFIG=$OUT/homeline.toml
{
    cat <<EOF
# Generated by benches/calls/run.sh.
[sip]
udp = ["127.0.0.1:$SIP_PORT"]
tcp = ["127.0.0.1:$SIP_PORT"]
public_address = "127.0.0.1"
domain = "127.0.0.1"
user_agent = "homeline-bench"
digest_algorithms = ["MD5"]
# The SIPp operators do not answer OPTIONS: no qualify (it would drop their bindings).
qualify_interval = "0s"
# All AGENTS operators register from one SIPp on $AGENT_IP, which is no trunk: no per-source
# rate limit (50/s by default), or registering them would take minutes.
rate_limit = 0

[http]
listen = "127.0.0.1:$HTTP_PORT"

[media]
public_ip = "127.0.0.1"
rtp_port_min = $RTP_MIN
rtp_port_max = $RTP_MAX
webrtc_udp = "127.0.0.1:$WEBRTC_PORT"

[log]
format = "json"
level = "$LOG_LEVEL"

[defaults]
ready_on_register = true

[[trunk]]
name = "pbx"
pbx = "$PBX_IP:$PBX_PORT"
transport = "udp"
allow = ["$PBX_IP/32"]
routes = { "8000" = "support" }

[[queue]]
name = "support"
answer = "$ANSWER"
strategy = "longest-idle"
ring_timeout = "15s"
wrap_up = "0s"
when_empty = "wait"
max_misses = 1
EOF
    for ((i = 0; i < AGENTS; i++)); do
        printf '\n[[agent]]\nname = "op%04d"\npassword = "bench"\nqueues = ["support"]\n' "$i"
    done
} >"$CONFIG"
USERS=$OUT/operators.csv
{
    echo SEQUENTIAL
    for ((i = 0; i < AGENTS; i++)); do
        printf 'op%04d;[authentication username=op%04d password=bench]\n' "$i" "$i"
    done
} >"$USERS"

# ---- processes: homeline, the operators' SIPp, dumpcap; all stopped on exit ----
HL_PID=
OP_PID=
CAP_PID=
PBX_TIMEOUT=
stop_pid() {
    if [[ -n $1 ]]; then
        kill "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
    fi
}
stop_all() {
    stop_pid "$PBX_TIMEOUT"
    PBX_TIMEOUT=
    stop_pid "$CAP_PID"
    CAP_PID=
    stop_pid "$OP_PID"
    OP_PID=
    stop_pid "$HL_PID"
    HL_PID=
}
trap stop_all EXIT
trap 'exit 130' INT TERM


ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
ticks_to_ms() { echo $(($1 * 1000 / CLK_TCK)); }
hl_alive() { kill -0 "$HL_PID" 2>/dev/null; }
hl_rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$HL_PID/status"; }
# `operator state` lines with state STATE in homeline's log LOG.
count_state() { grep -c "\"message\":\"operator state\".*\"state\":\"$2\"" "$1" || true; }

# start_homeline TAG: a fresh homeline (its log in $OUT/TAG.homeline.log), answering.
start_homeline() {
    HL_LOG=$OUT/$1.homeline.log
    "$BIN" run --config "$CONFIG" >"$HL_LOG" 2>&1 &
    HL_PID=$!
    python3 benches/ready.py "$SIP_PORT" ||
        die "homeline did not answer OPTIONS on 127.0.0.1:$SIP_PORT; see $HL_LOG"
}

# start_operators TAG OOC_SCENARIO: one SIPp registering all AGENTS operators from
# 127.0.0.2, answering with OOC_SCENARIO; waits until homeline has them all available.
start_operators() {
    local tag=$1 ooc=$2 port mp
    port=$(free_port $AGENT_IP)
    mp=$(free_port $AGENT_IP 4)
    (
        cd "$OUT"
        exec timeout --kill-after=5 1800 sipp -sf "$HERE/operator.xml" "127.0.0.1:$SIP_PORT" \
            -i $AGENT_IP -p "$port" -cp "$(free_port)" -mp "$mp" -t u1 \
            -inf "$USERS" -m "$AGENTS" -r "$REG_RATE" -l $((AGENTS * 10)) -d 1800000 \
            -oocsf "$HERE/$ooc" -buff_size 4194304 \
            -nostdin -trace_stat -stf "$OUT/$tag.operators.stat.csv" -fd 1 \
            >"$OUT/$tag.operators.out" 2>&1
    ) &
    OP_PID=$!
    local deadline=$((SECONDS + 30)) n=0
    while :; do
        n=$(count_state "$HL_LOG" available)
        ((n >= AGENTS)) && break
        kill -0 "$OP_PID" 2>/dev/null || die "the operators' SIPp exited; see $OUT/$tag.operators.out"
        ((SECONDS < deadline)) || die "only $n of $AGENTS operators available after 30 s; see $HL_LOG"
        sleep 0.2
    done
    # the operators' SIPp itself ($OP_PID is `timeout`, its parent)
    OP_SIPP=$(pgrep -P "$OP_PID" -x sipp | head -1 || true)
    [[ -n $OP_SIPP ]] || die "cannot find the operators' SIPp process"
}

# start_capture TAG: dumpcap on lo, keeping only INVITEs to and from homeline's SIP port.
start_capture() {
    ((LATENCY)) || return 0
    CAP_FILE=$OUT/$1.invites.pcap
    dumpcap -i lo -P -q -f "udp port $SIP_PORT and udp[8:4] = 0x494e5649" -w "$CAP_FILE" \
        >/dev/null 2>"$OUT/$1.dumpcap.log" &
    CAP_PID=$!
    local deadline=$((SECONDS + 10))
    until grep -q "Capturing on" "$OUT/$1.dumpcap.log" 2>/dev/null; do
        kill -0 "$CAP_PID" 2>/dev/null || die "dumpcap failed; see $OUT/$1.dumpcap.log"
        ((SECONDS < deadline)) || die "dumpcap did not start; see $OUT/$1.dumpcap.log"
        sleep 0.1
    done
}
# stop_capture: prints the latency figures (analyze.py latency) or dashes.
stop_capture() {
    if ! ((LATENCY)); then
        echo "0 - - - - 0 0 -"
        return
    fi
    sleep 0.3
    stop_pid "$CAP_PID"
    CAP_PID=
    python3 "$PY" latency "$CAP_FILE" "$SIP_PORT"
}

# Field NAME of the last line of SIPp's statistics file FILE (`;`-separated, header first).
stat_field() {
    awk -F';' -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) col = i }
        END { if (col) print $col }' "$1"
}
# The calls/s at which SIPp started the TOTAL calls of its statistics file FILE: TOTAL over
# the elapsed time of the first periodic line (-fd 1) that counts them all (1 s resolution).
started_rate() {
    awk -F';' -v total="$2" 'NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "OutgoingCall(C)") oc = i
            if ($i == "ElapsedTime(C)") el = i }; next }
        !done && $oc >= total { split($el, t, ":"); s = t[1] * 3600 + t[2] * 60 + t[3]
            if (s > 0) printf "%.1f", total / s; done = 1 }' "$1"
}
# hh:mm:ss:microseconds -> milliseconds.
to_ms() { awk -F: '{ printf "%.1f", ($1 * 3600 + $2 * 60 + $3) * 1000 + $4 / 1000 }' <<<"$1"; }

# pbx_run TAG SCENARIO RATE CALLS LIMIT TALK_MS: the PBX's SIPp in the foreground, bounded
# by timeout; sets PBX_CPU_MS (its user + system CPU time) and PBX_RC.
pbx_run() {
    local tag=$1 scenario=$2 rate=$3 calls=$4 limit=$5 talk=$6
    local budget=$((calls / rate + talk / 1000 + RECV_TIMEOUT_MS / 1000 * 3 + 20))
    local times=$OUT/$tag.pbx.times TIMEFORMAT='%3U %3S'
    set +e
    {
        time (
            # no `exec` here: bash's `time` says nothing for a subshell that execs
            cd "$OUT" && timeout --kill-after=5 $((budget + 10)) sipp -sf "$HERE/$scenario" \
                "127.0.0.1:$SIP_PORT" -s 8000 -i $PBX_IP -p "$PBX_PORT" -cp "$(free_port)" \
                -mp "$(free_port $PBX_IP 4)" -t u1 -r "$rate" -rp 1000 -m "$calls" -l "$limit" \
                -d "$talk" -recv_timeout "$RECV_TIMEOUT_MS" -timeout "${budget}s" \
                -aa -buff_size 4194304 -nostdin -trace_stat -stf "$OUT/$tag.pbx.stat.csv" -fd 1 \
                -trace_err -error_file "$OUT/$tag.pbx.errors.log" >"$OUT/$tag.pbx.out" 2>&1
        )
    } 2>"$times"
    PBX_RC=$?
    set -e
    PBX_CPU_MS=$(awk '{ printf "%d", ($1 + $2) * 1000 }' "$times")
}

# ---- phase setup ----
# run_setup RATE: sets RESULT to "rate total pbx_ok answered failed failure_pct achieved
# retrans hl_cpu_ms hl_us_per_call pbx_cpu_pct op_cpu_pct setup_ms wait99_ms lat_n lat_p50
# lat_p90 lat_p99 lat_max warnings rss_mb clean".
RESULT=
run_setup() {
    local rate=$1 tag=setup-$1
    local total=$((rate * DURATION))
    start_homeline "$tag"
    start_operators "$tag" operator_answer.xml
    start_capture "$tag"
    local hl0 op0 hl1 op1 t0 t1
    hl0=$(ticks "$HL_PID")
    op0=$(ticks "$OP_SIPP")
    t0=$(date +%s.%N)
    pbx_run "$tag" pbx.xml "$rate" "$total" \
        $((rate * (TALK_MS / 1000 + 3))) "$TALK_MS"
    t1=$(date +%s.%N)
    hl_alive || die "homeline died during $rate calls/s; see $HL_LOG"
    hl1=$(ticks "$HL_PID")
    op1=$(ticks "$OP_SIPP")
    local latency
    latency=$(stop_capture)
    sleep 0.5
    local rss
    rss=$(hl_rss_mb)
    stop_all
    local stat=$OUT/$tag.pbx.stat.csv
    [[ -s $stat ]] || die "the PBX's SIPp wrote no statistics (exit $PBX_RC); see $OUT/$tag.pbx.out"
    local ok retrans achieved setup answered outcomes on_call warnings wait99 waitmax
    ok=$(stat_field "$stat" "SuccessfulCall(C)")
    retrans=$(stat_field "$stat" "Retransmissions(C)")
    # the rate the PBX's INVITEs came at: from the capture, else from SIPp's statistics
    achieved=$(awk '{ print $8 }' <<<"$latency")
    [[ $achieved != - && -n $achieved ]] || achieved=$(started_rate "$stat" "$total")
    [[ -n $achieved ]] || achieved=0
    setup=$(to_ms "$(stat_field "$stat" "ResponseTime1(C)")")
    read -r answered outcomes on_call warnings wait99 waitmax < <(python3 "$PY" log "$HL_LOG")
    RESULT=$(awk -v rate="$rate" -v total="$total" -v ok="$ok" -v answered="$answered" \
        -v achieved="$achieved" -v retrans="$retrans" \
        -v hl="$(ticks_to_ms $((hl1 - hl0)))" -v op="$(ticks_to_ms $((op1 - op0)))" \
        -v pbx="$PBX_CPU_MS" -v t0="$t0" -v t1="$t1" -v setup="$setup" -v lat="$latency" \
        -v warnings="$warnings" -v rss="$rss" -v wait99="$wait99" 'BEGIN {
            good = ok < answered ? ok : answered
            failed = total - good
            pct = total ? 100 * failed / total : 100
            wall = t1 - t0
            split(lat, l, " ")
            clean = (pct < 0.1 && achieved >= 0.9 * rate) ? "yes" : "no"
            printf "%d %d %d %d %d %.3f %.0f %d %d %.0f %.0f %.0f %s %s %s %s %s %s %s %d %s %s\n",
                rate, total, ok, answered, failed, pct, achieved, retrans, hl,
                good ? hl * 1000 / good : 0, 100 * pbx / 1000 / wall, 100 * op / 1000 / wall,
                setup, wait99, l[1], l[2], l[3], l[4], l[5], warnings, rss, clean
        }')
}

SETUP_FMT='%7s %7s %7s %8s %6s %8s %9s %7s %7s %8s %6s %6s %8s %8s %6s %7s %7s %7s %7s %5s %7s %5s\n'
SETUP_JSON=
SETUP_MAX=0
SETUP_LIMIT=false
phase_setup() {
    local runs=() queue=() rate i=0 last_rate=0 last_clean=yes
    local max_clean=0 min_unclean=0 refined=0
    read -r -a queue <<<"$RATES"
    while :; do
        if ((i < ${#queue[@]})); then
            rate=${queue[i]}
        elif ((min_unclean == 0)) && [[ $last_clean == yes ]] &&
            ((last_rate > 0 && last_rate * 2 <= MAX_RATE)); then
            rate=$((last_rate * 2))
        elif ((min_unclean > 0 && refined < REFINE)); then
            rate=$(((max_clean + min_unclean) / 2))
            rate=$((rate / 50 * 50))
            ((rate > max_clean && rate < min_unclean)) || break
            refined=$((refined + 1))
        else
            break
        fi
        i=$((i + 1))
        say "setup: $rate calls/s for ${DURATION}s (talk ${TALK_MS} ms, $AGENTS operators) ..."
        run_setup "$rate"
        say "  $RESULT"
        runs+=("$RESULT")
        last_clean=${RESULT##* }
        last_rate=$rate
        if [[ $last_clean == yes ]]; then
            ((rate > max_clean)) && max_clean=$rate
        else
            SETUP_LIMIT=true
            if ((min_unclean == 0 || rate < min_unclean)); then min_unclean=$rate; fi
            # the listed rates stop at the first unclean one too
            ((i < ${#queue[@]})) && i=${#queue[@]}
        fi
    done
    SETUP_MAX=$max_clean

    printf '\nsetup: calls set up end to end (answer = "%s", talk %s ms, %s s per rate, %s operators, log level %s)\n' \
        "$ANSWER" "$TALK_MS" "$DURATION" "$AGENTS" "$LOG_LEVEL"
    # shellcheck disable=SC2059
    printf "$SETUP_FMT" rate/s total pbx_ok answered failed failed% achieved/s retrans hl_ms \
        hl_us/call pbx%cpu op%cpu setup_ms wait99_ms lat_n p50_ms p90_ms p99_ms max_ms warns rss_MB \
        clean
    local json_runs=() r
    local total ok answered failed pct achieved retrans hl per pbx op setup wait99 n p50 p90 p99
    local max warnings rss clean
    for r in "${runs[@]}"; do
        # shellcheck disable=SC2059,SC2086
        printf "$SETUP_FMT" $r
        read -r rate total ok answered failed pct achieved retrans hl per pbx op setup wait99 n p50 \
            p90 p99 max warnings rss clean <<<"$r"
        num() { [[ $1 == - ]] && echo null || echo "$1"; }
        json_runs+=("$(printf '{"rate":%s,"total":%s,"pbx_successful":%s,"answered":%s,"failed":%s,"failure_pct":%s,"achieved_rate":%s,"retransmissions":%s,"homeline_cpu_ms":%s,"homeline_cpu_us_per_call":%s,"pbx_sipp_cpu_pct":%s,"operators_sipp_cpu_pct":%s,"mean_setup_ms":%s,"queue_wait_p99_ms":%s,"latency_pairs":%s,"latency_p50_ms":%s,"latency_p90_ms":%s,"latency_p99_ms":%s,"latency_max_ms":%s,"homeline_warnings":%s,"rss_mb":%s,"clean":%s}' \
            "$rate" "$total" "$ok" "$answered" "$failed" "$pct" "$achieved" "$retrans" "$hl" \
            "$per" "$pbx" "$op" "$setup" "$(num "$wait99")" "$n" "$(num "$p50")" "$(num "$p90")" "$(num "$p99")" \
            "$(num "$max")" "$warnings" "$rss" "$([[ $clean == yes ]] && echo true || echo false)")")
    done
    if [[ $SETUP_LIMIT == true ]]; then
        printf 'highest clean rate: %s calls/s\n' "$max_clean"
    else
        printf 'highest clean rate: %s calls/s, the highest tried (no rate failed)\n' "$max_clean"
    fi
    local joined
    joined=$(
        IFS=,
        echo "${json_runs[*]}"
    )
    SETUP_JSON=$(printf '{"phase":"setup","max_clean_rate":%s,"limit_found":%s,"unit":"calls/s","answer":"%s","talk_ms":%s,"duration_s":%s,"agents":%s,"cpus":%s,"log_level":"%s","runs":[%s]}' \
        "$max_clean" "$SETUP_LIMIT" "$ANSWER" "$TALK_MS" "$DURATION" "$AGENTS" "$(nproc)" \
        "$LOG_LEVEL" "$joined")
}

# ---- phase media ----
MEDIA_JSON=
phase_media() {
    local tag=media
    local ramp=$(((RTP_CALLS + RTP_RATE - 1) / RTP_RATE))
    # every call stays up through the ramp, the wait for the last bridge, SETTLE and WINDOW
    local talk=$(((ramp + SETTLE + WINDOW + 6) * 1000))
    say "media: $RTP_CALLS RTP calls at $RTP_RATE calls/s, each up ${talk} ms; window ${WINDOW}s after ${SETTLE}s settling ..."
    start_homeline "$tag"
    start_operators "$tag" operator_answer_rtp.xml
    local i0 i1 idle_pct
    i0=$(ticks "$HL_PID")
    sleep 3
    i1=$(ticks "$HL_PID")
    idle_pct=$(awk -v t=$((i1 - i0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", 100 * t / hz / 3 }')
    local pbx_tag=$tag
    (pbx_run "$pbx_tag" pbx_rtp.xml "$RTP_RATE" "$RTP_CALLS" "$RTP_CALLS" "$talk") &
    local pbx_job=$!
    sleep 0.5
    # the PBX's `timeout`, stopped (with its SIPp) if this phase dies
    PBX_TIMEOUT=$(pgrep -f "^timeout --kill-after=5 [0-9]+ sipp -sf $HERE/pbx_rtp.xml" | head -1 || true)
    local deadline=$((SECONDS + ramp + 20)) n=0 bridged_at
    while :; do
        n=$(count_state "$HL_LOG" on_call)
        ((n >= RTP_CALLS)) && break
        ((SECONDS < deadline)) || die "only $n of $RTP_CALLS calls bridged; see $HL_LOG"
        sleep 0.2
    done
    bridged_at=$SECONDS
    sleep "$SETTLE"
    local snmp0 snmp1 h0 h1 p0 p1 o0 o1 t0 t1 pbx_sipp
    pbx_sipp=$(pgrep -f "^sipp -sf $HERE/pbx_rtp.xml" | head -1 || true)
    snmp0=$(awk '/^Udp: [0-9]/ { print $2, $3, $4 }' /proc/net/snmp)
    h0=$(ticks "$HL_PID")
    o0=$(ticks "$OP_SIPP")
    p0=$(ticks "$pbx_sipp")
    t0=$(date +%s.%N)
    sleep "$WINDOW"
    h1=$(ticks "$HL_PID")
    o1=$(ticks "$OP_SIPP")
    p1=$(ticks "$pbx_sipp")
    t1=$(date +%s.%N)
    snmp1=$(awk '/^Udp: [0-9]/ { print $2, $3, $4 }' /proc/net/snmp)
    # calls still bridged at the end of the window: bridged ones minus ended ones
    local on_call_end
    on_call_end=$(($(count_state "$HL_LOG" on_call) - $(grep -c '"message":"call outcome"' "$HL_LOG" || true)))
    local rss
    rss=$(hl_rss_mb)
    wait "$pbx_job" || true
    PBX_TIMEOUT=
    hl_alive || die "homeline died during the media phase; see $HL_LOG"
    sleep 1
    stop_all
    local stat=$OUT/$tag.pbx.stat.csv
    [[ -s $stat ]] || die "the PBX's SIPp wrote no statistics; see $OUT/$tag.pbx.out"
    local ok calls pps received forwarded lost errors min_fwd max_fwd answered outcomes warnings
    ok=$(stat_field "$stat" "SuccessfulCall(C)")
    read -r calls pps received forwarded lost errors min_fwd max_fwd < <(python3 "$PY" media "$HL_LOG")
    read -r answered outcomes _ warnings _ _ < <(python3 "$PY" log "$HL_LOG")
    local summary
    summary=$(awk -v wall0="$t0" -v wall1="$t1" -v h="$((h1 - h0))" -v o="$((o1 - o0))" \
        -v p="$((p1 - p0))" -v hz="$CLK_TCK" -v pps="$pps" -v calls="$RTP_CALLS" \
        -v s0="$snmp0" -v s1="$snmp1" 'BEGIN {
            wall = wall1 - wall0
            cpu_s = h / hz
            relayed = pps * wall
            split(s0, a, " "); split(s1, b, " ")
            # InDatagrams + NoPorts + InErrors (RcvbufErrors among them): every UDP datagram
            # received on the host
            udp_in = (b[1] - a[1]) + (b[2] - a[2]) + (b[3] - a[3])
            printf "%.2f %.3f %.0f %.0f %.0f %.2f %.2f %.2f %.1f %.1f %.1f\n",
                wall, cpu_s, pps, relayed, udp_in / 2,
                relayed ? cpu_s * 1e6 / relayed : 0,
                udp_in ? cpu_s * 1e6 / (udp_in / 2) : 0,
                100 * cpu_s / wall / (calls / 100), 100 * cpu_s / wall,
                100 * o / hz / wall, 100 * p / hz / wall
        }')
    local wall cpu_s relayed udp_half us us_snmp pct100 hl_pct op_pct pbx_pct
    read -r wall cpu_s pps relayed udp_half us us_snmp pct100 hl_pct op_pct pbx_pct <<<"$summary"

    printf '\nmedia: %s concurrent RTP calls (PCMU, 20 ms both ways), window %s s\n' "$RTP_CALLS" "$wall"
    printf '  calls bridged at the window start / end: %s / %s; PBX SIPp successful calls %s of %s; Answered %s\n' \
        "$RTP_CALLS" "$on_call_end" "$ok" "$RTP_CALLS" "$answered"
    ((on_call_end == RTP_CALLS)) ||
        printf '  WARNING: calls ended during the window: the figures below are not for %s calls\n' "$RTP_CALLS"
    printf '  homeline CPU in window: %s s = %s %% of one CPU (idle with %s operators registered: %s %%)\n' \
        "$cpu_s" "$hl_pct" "$AGENTS" "$idle_pct"
    printf '  packets relayed: %s /s from the relay reports (%s calls, %s..%s forwarded per call, %s lost, %s send errors); host UDP datagrams received / 2: %s in the window\n' \
        "$pps" "$calls" "$min_fwd" "$max_fwd" "$lost" "$errors" "$udp_half"
    printf '  CPU per relayed packet: %s µs (by the host UDP counters: %s µs)\n' "$us" "$us_snmp"
    printf '  CPU per 100 calls: %s %% of one CPU\n' "$pct100"
    printf '  SIPp CPU in window: PBX %s %%, operators %s %%; homeline RSS %s MB; warnings %s\n' \
        "$pbx_pct" "$op_pct" "$rss" "$warnings"
    MEDIA_JSON=$(printf '{"phase":"media","calls":%s,"calls_rate":%s,"window_s":%s,"homeline_cpu_s":%s,"homeline_cpu_pct":%s,"idle_cpu_pct":%s,"packets_per_s":%s,"packets_relayed_window":%s,"udp_received_half_window":%s,"cpu_us_per_packet":%s,"cpu_us_per_packet_udp_counters":%s,"cpu_pct_per_100_calls":%s,"pbx_successful":%s,"answered":%s,"bridged_at_end":%s,"relay_reports":%s,"received":%s,"forwarded":%s,"lost":%s,"send_errors":%s,"pbx_sipp_cpu_pct":%s,"operators_sipp_cpu_pct":%s,"rss_mb":%s,"homeline_warnings":%s,"cpus":%s,"agents":%s,"log_level":"%s"}' \
        "$RTP_CALLS" "$RTP_RATE" "$wall" "$cpu_s" "$hl_pct" "$idle_pct" "$pps" "$relayed" \
        "$udp_half" "$us" "$us_snmp" "$pct100" "$ok" "$answered" "$on_call_end" "$calls" \
        "$received" "$forwarded" "$lost" "$errors" "$pbx_pct" "$op_pct" "$rss" "$warnings" \
        "$(nproc)" "$AGENTS" "$LOG_LEVEL")
    MEDIA_SUMMARY="$us µs CPU per relayed packet, $pct100 % of one CPU per 100 calls ($RTP_CALLS calls, $pps packets/s)"
}

say "$("$BIN" --version 2>/dev/null | head -1); SIP on 127.0.0.1:$SIP_PORT, PBX on $PBX_IP:$PBX_PORT, operators on $AGENT_IP; $(nproc) CPUs"
MEDIA_SUMMARY=
for phase in $PHASES; do
    case $phase in
    setup) phase_setup ;;
    media) phase_media ;;
    *) die "unknown phase $phase (setup, media)" ;;
    esac
done

echo
echo "summary:"
if [[ -n $SETUP_JSON ]]; then
    echo "  calls set up end to end: $SETUP_MAX calls/s clean$([[ $SETUP_LIMIT == true ]] || echo ' (no rate failed: a lower bound)')"
    python3 - "$SETUP_JSON" <<'EOF'
import json, sys
s = json.loads(sys.argv[1])
for r in s["runs"]:
    if r["latency_pairs"]:
        print("  latency INVITE -> operator INVITE at %5d calls/s: p50 %.3f ms, p99 %.3f ms (%d calls)%s"
              % (r["rate"], r["latency_p50_ms"], r["latency_p99_ms"], r["latency_pairs"],
                 "" if r["clean"] else ", not clean"))
EOF
fi
[[ -n $MEDIA_SUMMARY ]] && echo "  media: $MEDIA_SUMMARY"
echo
[[ -n $SETUP_JSON ]] && echo "$SETUP_JSON"
[[ -n $MEDIA_JSON ]] && echo "$MEDIA_JSON"
say "details (configuration, captures, SIPp statistics and errors, homeline's logs) in $OUT"
