#!/usr/bin/env python3
"""Fleets (issue 14, target 5): one `sremote` command on many hosts at once.

Starts M = max(--hosts, --big-hosts, --hold) loopback sshd's, ONE SSHD PROCESS PER HOST,
each on its own port with its own HOME (so the endpoint is installed per host, as on real
machines), all with one host key and one client key. One sshd per host rather than one
sshd listening on M ports: a real fleet has one sshd per machine, each with its own
`MaxStartups` budget and listener backlog and its own HOME; one sshd on M ports would
throttle M simultaneous logins through a single `MaxStartups` (10:30:100 by default) and
share one HOME, i.e. measure one overloaded host, not a fleet.

Part 1, WAN fleet: the first N = --hosts (default 50) sshd's, each behind its own port
of ONE delay proxy process (bench/delay-proxy.py, --delay-ms one way in each direction,
default 50: a round trip costs 100 ms more). Group `@fleet` of the hosts config holds
them. Wall time of whole processes, each measured beside one host of the same fleet
through the same proxy (the ratio is the figure; goal ≤ 2):
  * fresh: no endpoint on any host, no ssh login: `sremote call @fleet os getenv HOME`
    (login, probe, push, verify, session, call on every host);
  * cold: endpoint installed, no persisted login (`sremote disconnect --all` first);
  * warm: the persisted logins (ssh ControlMaster) of the previous command reused.
All with `--parallel N` (every host at once). Client memory: the peak RSS of the
`sremote` process itself (VmHWM polled from /proc), per host as (fleet − one host) / (N − 1),
and the PSS of the ssh master processes it leaves (one per host) divided by N.
`--parallel P` respected (default P = 5): `sremote --no-persist --parallel P call @fleet`,
the largest number of connections the proxy saw open at once (≤ P expected) and the wall
against ceil(N / P) × one host's (≈ 1 expected; ≪ 1 means it did not wait).

Part 2, many hosts: the first B = --big-hosts (default 200) sshd's directly (no delay), group
`@big`, from fresh hosts then warm, `--parallel B`: failures (hosts whose JSON line is not
ok, and the exit code), wall, and memory per host as above.

Part 3, one library client holding H = --hold (default 100; 0 skips) sessions at once: the
first H no-delay hosts (h000…), the endpoint installed on them first (`sremote call @hold`,
a no-op where part 2 installed it; then `sremote disconnect --all`). One process of
`crates/sremote-ssh/examples/hold_sessions.rs` (release, built first unless --hold-bin):
one `SshConnector` (a master of its own, not persisted) and one `RemoteClient` per host,
`os.getenv HOME` as every call. It reports (one JSON object) one host connected alone
(connect + first call, p50/p99 of sequential calls on its session, resources), then all H
connected at once (wall to connect + first call; its peer: `ssh HOST true` on all H hosts
at once, new connections, in the same run), one call on every session at once (median wall
of --hold-rounds rounds; the CPU time the client and the ssh masters spent per call), the
same sequential calls on the first session while all H are held (the held / alone p50 ratio
is the figure: does holding H sessions slow a call?) and again after the others are closed;
the process's RSS, open fds (pipes, sockets) and threads (/proc/self) and the ssh masters'
PSS, per session; failed hosts.

usage: bench/fleet.py [--hosts 50] [--big-hosts 200] [--hold 100] [--delay-ms 50] [--reps 3]
                      [--parallel-check 5] [--hold-rounds 20] [--hold-seq 5000]
                      [--sremote PATH] [--hold-bin PATH] [--write]
`--write` replaces the section "Fleets" of BENCHMARKS.md. Needs root (sshd) and a release
`sremote` (built first unless --sremote). Smoke run: --hosts 5 --big-hosts 10 --hold 10
--reps 1.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib
from benchlib import ROOT

BEGIN = "<!-- fleet: written by bench/fleet.py -->"
END = "<!-- fleet: end -->"


class Fleet:
    """M sshd's, the delay proxy in front of the first N, an ssh config and hosts config."""

    def __init__(self, state, n_wan, n_big, n_hold, delay_ms):
        n_all = max(n_wan, n_big, n_hold)
        self.state = state
        self.keydir = benchlib.keys(os.path.join(state, "keys"))
        self.sshds = [benchlib.Sshd(os.path.join(state, "hosts", f"h{i:03d}"), self.keydir)
                      for i in range(n_all)]
        for s in self.sshds:
            s.start()
        for s in self.sshds:
            s.wait_ready()
        self.wan = [f"w{i:03d}" for i in range(n_wan)]
        self.direct = [f"h{i:03d}" for i in range(n_all)]  # every sshd, no delay
        self.big = self.direct[:n_big]
        self.hold = self.direct[:n_hold]
        self.proxy_ports = [benchlib.free_port() for _ in range(n_wan)]
        pairs = os.path.join(state, "proxy-pairs")
        with open(pairs, "w") as f:
            for port, s in zip(self.proxy_ports, self.sshds):
                f.write(f"{port}:127.0.0.1:{s.port}\n")
        self.events = os.path.join(state, "proxy-events")
        self.proxy = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "delay-proxy.py"), "--delay-ms", str(delay_ms),
             "--events", self.events, "--pairs", pairs], stdout=subprocess.PIPE, text=True)
        if self.proxy.stdout.readline().strip() != "ready":
            raise SystemExit("the delay proxy did not start")
        self.ssh_config = os.path.join(state, "ssh_config")
        with open(self.ssh_config, "w") as f:
            for alias, port in zip(self.wan, self.proxy_ports):
                f.write(benchlib.ssh_host(alias, port, self.keydir))
            for alias, s in zip(self.direct, self.sshds):
                f.write(benchlib.ssh_host(alias, s.port, self.keydir))
        self.hosts_config = os.path.join(state, "hosts.toml")
        with open(self.hosts_config, "w") as f:
            f.write("[groups]\n")
            f.write("fleet = [" + ", ".join(f'"{h}"' for h in self.wan) + "]\n")
            f.write("big = [" + ", ".join(f'"{h}"' for h in self.big) + "]\n")
            f.write("hold = [" + ", ".join(f'"{h}"' for h in self.hold) + "]\n")

    def wipe_endpoints(self):
        """Every host fresh: no sremote dir in its HOME."""
        for s in self.sshds:
            shutil.rmtree(os.path.join(s.home, ".sremote"), ignore_errors=True)

    def peak_open(self, since):
        """The most proxied connections open at once after monotonic time `since`."""
        up = peak = 0
        with open(self.events) as f:
            for line in f:
                t, what, _ = line.split()
                up += 1 if what == "open" else -1
                if float(t) >= since:
                    peak = max(peak, up)
        return peak

    def stop(self):
        if self.proxy.poll() is None:
            self.proxy.terminate()
            self.proxy.wait(timeout=10)
        for s in self.sshds:
            s.stop()


class Client:
    """`sremote` with its own HOME, control dir and hosts config."""

    def __init__(self, binary, fleet):
        self.binary = binary
        self.fleet = fleet
        self.control = os.path.join(fleet.state, "ctl")
        self.env = dict(os.environ, HOME=os.path.join(fleet.state, "clienthome"),
                        SREMOTE_CONTROL_DIR=self.control, SREMOTE_CONFIG=fleet.hosts_config)
        self.env.pop("SREMOTE_LOG", None)
        os.makedirs(self.env["HOME"], exist_ok=True)

    def disconnect(self):
        subprocess.run([self.binary, "disconnect", "--all"], env=self.env, capture_output=True)

    def call(self, target, parallel, extra=(), hosts=None):
        """One `sremote --json call TARGET os getenv HOME` on `hosts` hosts (default: the
        parallelism): a dict of wall, peak RSS, failures (error lines, and hosts with no
        line at all), exit code, ssh masters' PSS."""
        cmd = [self.binary, "--ssh-config", self.fleet.ssh_config, "--json", "--parallel",
               str(parallel), *extra, "call", target, "os", "getenv", "HOME"]
        code, wall, peak, out, err = benchlib.run_peak_rss(cmd, env=self.env)
        lines = json_values(out)
        failed = [o for o in lines if o.get("ok") is False]
        missing = (hosts or parallel) - len(lines)
        failed += [{"error": "no answer for this host"}] * max(0, missing)
        masters = benchlib.pids_with(self.control)
        pss = sum(benchlib.pss_kib(p) or 0 for p in masters)
        return {"wall_s": wall, "rss_kib": peak, "code": code, "answers": len(lines),
                "failed": failed, "stderr": err.strip(), "masters": len(masters),
                "masters_pss_kib": pss}


def json_values(text):
    """The JSON objects in `text`, one after the other (one per host, or one pretty one)."""
    dec, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        try:
            value, i = dec.raw_decode(text, i)
        except ValueError:
            return out  # not JSON: counted by the exit code
        out.append(value)


def measure(client, target, one, parallel, state, reps):
    """Median fleet and one-host results for `state` (fresh | cold | warm), `reps` times."""
    runs = {"fleet": [], "one": []}
    for _ in range(reps):
        for key, what, par in (("one", one, 1), ("fleet", target, parallel)):
            if state == "fresh":
                client.disconnect()
                client.fleet.wipe_endpoints()
            elif state == "cold":
                client.disconnect()
            else:
                client.call(what, par)  # the logins are up
            runs[key].append(client.call(what, par, hosts=par))
    return {k: summarize(v) for k, v in runs.items()}


def summarize(runs):
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    worst = max(runs, key=lambda r: len(r["failed"]) or r["code"])
    return {"wall_s": med("wall_s"), "rss_kib": med("rss_kib"), "masters": med("masters"),
            "masters_pss_kib": med("masters_pss_kib"),
            "failed": max(len(r["failed"]) for r in runs),
            "code": max(r["code"] for r in runs), "answers": min(r["answers"] for r in runs),
            "example_error": (worst["failed"][0].get("error") if worst["failed"] else
                              (worst["stderr"][-300:] if worst["code"] else None))}


def per_host(fleet_r, one_r, n):
    """KiB per host: the sremote process's growth per extra host, ssh masters' PSS / host."""
    rss = (fleet_r["rss_kib"] - one_r["rss_kib"]) / max(1, n - 1)
    pss = fleet_r["masters_pss_kib"] / max(1, fleet_r["masters"] or n)
    return rss, pss


def parallel_check(client, fleet, p, one_wall, n):
    client.disconnect()
    time.sleep(1)  # the proxy closes its side after the delay: old connections gone first
    since = time.monotonic()
    r = client.call("@fleet", p, extra=["--no-persist"], hosts=n)
    time.sleep(0.2)
    peak = fleet.peak_open(since)
    if peak > p:
        progress(f"--parallel {p}: {peak} connections open at once; the proxy's events "
                 "(s since the command started, event, port):")
        with open(fleet.events) as f:
            for line in f:
                t, what, port = line.split()
                if float(t) >= since:
                    print(f"  {float(t) - since:7.3f} {what} {port}", file=sys.stderr)
    expected = math.ceil(n / p) * one_wall
    return {"p": p, "peak_open": peak, "wall_s": r["wall_s"], "expected_s": expected,
            "failed": len(r["failed"]), "code": r["code"]}


def hold_binary(path):
    """The release `hold_sessions` example: `path` when given, else built."""
    if path:
        return str(path)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sremote-ssh", "--example",
                    "hold_sessions"], cwd=ROOT, check=True)
    return str(ROOT / "target" / "release" / "examples" / "hold_sessions")


def hold(args, fleet, client, binary):
    """Part 3: the endpoint installed on the first --hold hosts, then one `hold_sessions`
    process holding a session on each. Its JSON object, with its exit code and stderr."""
    h = args.hold
    r = client.call("@hold", h, hosts=h)  # installs the endpoint where part 2 did not
    if r["failed"] or r["code"]:  # the example installs the endpoint itself if need be
        progress(f"installing the endpoint on @hold failed (exit {r['code']}): "
                 f"{(r['failed'] or [r['stderr']])[0]}")
    client.disconnect()  # the example's own masters only
    floor = ssh_floor(fleet, client.env)
    time.sleep(2)  # the logins of the floor and of part 2 settle
    load = "{:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())
    cmd = [binary, "--rounds", str(args.hold_rounds), "--seq", str(args.hold_seq),
           fleet.ssh_config, *fleet.hold]
    try:
        p = subprocess.run(cmd, env=client.env, capture_output=True, text=True, timeout=900)
        out, err, code = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:  # the example is killed; its masters are not
        out, err, code = e.stdout or "", "timed out after 900 s", -9
        for pid in set(benchlib.pids_with(fleet.ssh_config)) & set(benchlib.pids_with("/srhold-")):
            os.kill(pid, 15)
    values = json_values(out if isinstance(out, str) else out.decode(errors="replace"))
    if not values:
        progress(f"hold_sessions gave no result (exit {code}): {err.strip()[-500:]}")
        return {"error": err.strip()[-300:], "code": code}
    progress(f"hold_sessions (exit {code}): {out.strip()}")
    return dict(values[0], code=code, stderr=err.strip(), loadavg=load, floor=floor)


def ssh_floor(fleet, env):
    """The peer of connecting to all --hold hosts at once: `ssh HOST true` on each of them at
    once, new connections (wall ms, failures), and on the first one alone (wall ms)."""
    def run(hosts):
        t = time.perf_counter()
        ps = [subprocess.Popen(["ssh", "-F", fleet.ssh_config, h, "true"], env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) for h in hosts]
        codes = [p.wait() for p in ps]
        return (time.perf_counter() - t) * 1000, sum(1 for c in codes if c)
    one, _ = run(fleet.hold[:1])
    all_, failed = run(fleet.hold)
    return {"one_ms": one, "all_ms": all_, "failed": failed}


def hold_report(args, r):
    """Part 3's lines: one short table (one session alone, before and after, against the same
    session while all H are held) and a sentence."""
    h = args.hold
    if "alone" not in r:
        return ["", f"One library client holding {h} sessions: no result (exit {r['code']}): "
                f"`{json.dumps(r.get('error') or r.get('failed'))[:300]}`"]
    a, held, hu = r["alone"], r.get("held", {}), r.get("holding", {})
    after, per = r.get("after", {}), r.get("per_session", {})
    au, fu = a["usage"], r.get("after", {}).get("usage", {})
    fl = r["floor"]

    def v(d, k, unit="", f="{:.0f}"):
        return f.format(d[k]) + unit if d.get(k) is not None else "–"

    def ratio(x, *ys):
        ys = [y for y in ys if y]
        return f"{x / statistics.mean(ys):.2f}" if x and ys else "–"

    def mib(u):
        return f"{u['rss_kib'] / 1024:.1f} MiB" if u else "–"

    us = lambda d, k: v(d, k, " µs")  # noqa: E731
    return [
        "", f"One library client holding {h} sessions at once "
        f"(`crates/sremote-ssh/examples/hold_sessions.rs`, `--hold {h}`): one process, one "
        "current-thread tokio runtime, one `SshConnector` (a master of its own) and "
        f"`RemoteClient` per host, on the first {h} hosts without delay (endpoint installed). "
        "*Alone* is the first host connected by itself in the same process before the others "
        f"(and its session again after the other {h - 1} were closed), *held* that session while "
        f"all {h} are open; per call: {args.hold_seq} sequential `os getenv HOME` on that session "
        "(held / alone: against the mean of before and after, which cancels a drift). "
        f"Load average {r['loadavg']}.",
        "",
        f"| | alone (before) | {h} sessions held | alone (after) | held / alone |",
        "|---|---:|---:|---:|---:|",
        f"| connect + first call (all at once) | {v(a, 'connect_first_call_ms', ' ms')} | "
        f"{v(r, 'open_wall_ms', ' ms')} | – | "
        f"{ratio(r.get('open_wall_ms'), a['connect_first_call_ms'])} |",
        f"| `ssh HOST true`, new connections (all at once), the peer | {fl['one_ms']:.0f} ms | "
        f"{fl['all_ms']:.0f} ms | – | {fl['all_ms'] / fl['one_ms']:.2f} |",
        f"| per-call p50 | {us(a, 'seq_p50_us')} | {us(held, 'seq_p50_us')} | "
        f"{us(after, 'seq_p50_us')} | "
        f"{ratio(held.get('seq_p50_us'), a['seq_p50_us'], after.get('seq_p50_us'))} |",
        f"| per-call p99 | {us(a, 'seq_p99_us')} | {us(held, 'seq_p99_us')} | "
        f"{us(after, 'seq_p99_us')} | "
        f"{ratio(held.get('seq_p99_us'), a['seq_p99_us'], after.get('seq_p99_us'))} |",
        f"| one call on every session at once (median of {held.get('rounds', 0)} rounds) | – | "
        f"{v(held, 'round_p50_ms', ' ms', '{:.1f}')} "
        f"({held.get('round_p50_ms', 0) * 1000 / h:.0f} µs per session) | – | – |",
        f"| client RSS | {mib(au)} | {mib(hu)} | {mib(fu)} | – |",
        f"| open fds, threads | {au['fds']}, {au['threads']} | "
        f"{v(hu, 'fds')}, {v(hu, 'threads')} | "
        f"{v(fu, 'fds')}, {v(fu, 'threads')} | – |",
        f"| ssh masters' PSS | {a['masters_pss_kib'] / 1024:.1f} MiB | "
        f"{r.get('masters_pss_kib', 0) / 1024:.1f} MiB ({r.get('masters', 0)} masters) | "
        f"{after.get('masters_pss_kib', 0) / 1024:.1f} MiB | – |",
        "",
        f"Per held session: {v(per, 'marginal_rss_kib')} KiB of client RSS "
        f"({v(per, 'rss_kib')} counting what the first one costs once), "
        f"{v(per, 'marginal_fds', '', '{:.1f}')} fds (holding: {v(hu, 'pipes')} pipes, "
        f"{v(hu, 'sockets')} sockets), {v(per, 'master_pss_kib')} KiB in its ssh "
        f"master. Connecting all {h} at once takes "
        f"{r.get('open_wall_ms', 0) / fl['all_ms']:.2f}× "
        f"the peer's wall ({fl['failed']} of its ssh failed). CPU per call in the rounds: "
        f"{v(held, 'round_client_cpu_us_per_call', ' µs')} in the client, "
        f"{v(held, 'round_masters_cpu_us_per_call', ' µs')} in the ssh masters (the rest of a "
        "round is sshd's and the endpoints). "
        f"{r.get('failed_count', 0)} of {h} failed, exit {r['code']}."
        + (f" First error: `{json.dumps(r['failed'][0])[:300]}`" if r.get("failed") else ""),
    ]


def progress(msg):
    print(f"[fleet {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description="sremote on fleets of loopback sshd hosts")
    ap.add_argument("--hosts", type=int, default=50, help="hosts behind the delay proxy")
    ap.add_argument("--big-hosts", type=int, default=200, help="hosts without delay (0: skip)")
    ap.add_argument("--delay-ms", type=float, default=50, help="one way, each direction")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--parallel-check", type=int, default=5)
    ap.add_argument("--hold", type=int, default=100,
                    help="sessions one library client holds at once (0: skip)")
    ap.add_argument("--hold-rounds", type=int, default=20, help="rounds of a call on every session")
    ap.add_argument("--hold-seq", type=int, default=5000, help="sequential calls for p50/p99")
    ap.add_argument("--sremote", help="the sremote binary (default: build the release one)")
    ap.add_argument("--hold-bin", help="the hold_sessions example (default: build it, release)")
    ap.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = ap.parse_args()
    if args.hosts < 2:
        ap.error("--hosts must be at least 2")
    if args.hold < 0 or args.big_hosts < 0:
        ap.error("--hold and --big-hosts must not be negative")
    binary = benchlib.sremote_binary(args.sremote)
    hold_bin = hold_binary(args.hold_bin) if args.hold else None
    state = tempfile.mkdtemp(prefix="srfleet-", dir="/tmp")
    progress(f"starting {max(args.hosts, args.big_hosts, args.hold)} sshd's and the delay proxy "
             f"in {state}")
    fleet = Fleet(state, args.hosts, args.big_hosts, args.hold, args.delay_ms)
    client = Client(binary, fleet)
    try:
        results = run(args, fleet, client, hold_bin)
    finally:
        client.disconnect()
        fleet.stop()
        shutil.rmtree(state, ignore_errors=True)
    benchlib.publish(report(args, results), args.write, BEGIN, END)


def run(args, fleet, client, hold_bin):
    n = args.hosts
    results = {"wan": {}}
    for state in ("fresh", "cold", "warm"):
        progress(f"{n} hosts behind {args.delay_ms:g} ms, {state}")
        results["wan"][state] = measure(client, "@fleet", fleet.wan[0], n, state, args.reps)
    progress(f"--parallel {args.parallel_check} on {n} hosts")
    one_cold = results["wan"]["cold"]["one"]["wall_s"]
    results["parallel"] = parallel_check(client, fleet, args.parallel_check, one_cold, n)
    if args.big_hosts:
        m = args.big_hosts
        results["big"] = {}
        for state in ("fresh", "warm"):
            progress(f"{m} hosts without delay, {state}")
            results["big"][state] = measure(client, "@big", fleet.big[0], m, state, 1)
    if args.hold:
        progress(f"one library client holding {args.hold} sessions")
        results["hold"] = hold(args, fleet, client, hold_bin)
    return results


def report(args, results):
    n = args.hosts
    lines = [
        BEGIN,
        "## Fleets (bench/fleet.py)",
        "",
        f"`bench/fleet.py --hosts {n} --big-hosts {args.big_hosts} --hold {args.hold} "
        f"--delay-ms {args.delay_ms:g} "
        f"--reps {args.reps}` on {time.strftime('%Y-%m-%d')}: {benchlib.machine()}; a release "
        "build. One loopback sshd process per host (own port, own HOME), the WAN hosts behind "
        f"one delay-proxy process adding {args.delay_ms:g} ms each way "
        f"({2 * args.delay_ms:g} ms per round trip). `sremote --json --parallel {n} call @fleet "
        "os getenv HOME`, whole processes, medians; *one host* is `call` on one host of the "
        "same fleet through the same proxy in the same run. Memory: the `sremote` process's "
        "peak RSS growth per extra host, and the ssh master processes' PSS per host.",
        "",
        "| state | one host | fleet | fleet / one host (goal ≤ 2) | failed | sremote RSS | "
        "KiB/host (sremote) | KiB/host (ssh master) | KiB/host (both; goal ≤ 2048) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for state, r in results["wan"].items():
        f, o = r["fleet"], r["one"]
        rss, pss = per_host(f, o, n)
        lines.append(f"| {state} ({n} hosts) | {o['wall_s'] * 1000:.0f} ms | {f['wall_s'] * 1000:.0f} ms | "
                     f"{f['wall_s'] / o['wall_s']:.2f} | {f['failed']} | {f['rss_kib'] / 1024:.1f} MiB | "
                     f"{rss:.0f} | {pss:.0f} | {rss + pss:.0f} |")
    p = results["parallel"]
    lines += [
        "",
        f"`--parallel {p['p']}` (with `--no-persist`, so a host's connection closes when it is "
        f"done): at most {p['peak_open']} connections open at once (goal ≤ {p['p']}); wall "
        f"{p['wall_s'] * 1000:.0f} ms against ceil({n}/{p['p']}) × one cold host = "
        f"{p['expected_s'] * 1000:.0f} ms (ratio {p['wall_s'] / p['expected_s']:.2f}); "
        f"{p['failed']} failed, exit {p['code']}." + (
            " More connections than P at once: a finished host's connection closes only after "
            "the next host's login has started (the proxy's open/close times are printed on "
            "stderr)." if p["peak_open"] > p["p"] else ""),
    ]
    if "big" in results:
        m = args.big_hosts
        lines += ["", f"{m} hosts without delay, `--parallel {m}`:", "",
                  "| state | wall | failed | exit | sremote RSS | KiB/host (sremote) | "
                  "KiB/host (ssh master) | KiB/host (both) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for state, r in results["big"].items():
            f, o = r["fleet"], r["one"]
            rss, pss = per_host(f, o, m)
            lines.append(f"| {state} | {f['wall_s'] * 1000:.0f} ms | {f['failed']} of {m} | {f['code']} | "
                         f"{f['rss_kib'] / 1024:.1f} MiB | {rss:.0f} | {pss:.0f} | {rss + pss:.0f} |")
        errors = [r["fleet"]["example_error"] for r in results["big"].values() if r["fleet"]["example_error"]]
        if errors:
            lines += ["", f"First error seen: `{json.dumps(errors[0])[:300]}`"]
    if "hold" in results:
        lines += hold_report(args, results["hold"])
    lines += [END]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
