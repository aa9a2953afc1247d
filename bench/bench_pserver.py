#!/usr/bin/python3
"""bench_pserver: the parameter-server experiment of the Eleos paper on the emulator.

Throughput (keys/s) of eleos-pserver in native, sgx and eleos modes, for batches of 64 B to
64 KiB, a working set that fits the EPC (32 MiB table) and one 5.5x larger (512 MiB table,
93 MiB EPC, 60 MiB SUVM cache), cost model on and off. Each server has an EPC platform of
its own (ELEOS_EPC_PLATFORM), so the servers alive side by side do not page each other.
Every configuration is the median of R runs; ratios (eleos/sgx, native/sgx) are taken
within the same run of this script.

eleos mode runs with its default I/O path (--rpc auto: the I/O queue, executor chosen at run
time); --rpc X,Y adds an eleos column per listed --rpc value (uring, worker, sqpoll, batch,
sync...), measured in the same interleaved repetitions. A "floor" column runs the same client
against bench/pserver_floor (a native server that busy-polls its connection and does no table
work): what this client can reach at all on this machine, so floor/sgx bounds eleos/sgx.
--points SET:BATCH,... measures only those points (e.g. small:64), --model on|off only that
cost model. --base OTHER_BUILD adds that build's sgx and eleos servers (its own defaults,
driven by this build's client) to the same interleaved repetitions: an older commit's
eleos/sgx re-measured beside this one's. After each server group
the executors the I/O queue ran on are printed (from the servers' final statistics).

usage: bench_pserver.py BUILD_DIR [--quick] [--reps R] [--csv FILE] [--rpc LIST]
                        [--points LIST] [--model on|off] [--base OTHER_BUILD_DIR]
"""
import os
import socket
import statistics
import subprocess
import sys
import time

args = sys.argv[1:]
if not args or args[0].startswith("-"):
    print(__doc__)
    sys.exit(2)
build = args.pop(0)
quick = "--quick" in args
reps = 3
csv_path = None
rpc_extra = []
points = None
models = (False, True)
base = None
i = 0
while i < len(args):
    if args[i] == "--reps":
        reps = int(args[i + 1]); i += 1
    elif args[i] == "--csv":
        csv_path = args[i + 1]; i += 1
    elif args[i] == "--rpc":
        rpc_extra = [x for x in args[i + 1].split(",") if x]; i += 1
    elif args[i] == "--points":
        points = {(p.split(":")[0], int(p.split(":")[1])) for p in args[i + 1].split(",")}
        i += 1
    elif args[i] == "--base":
        base = args[i + 1]; i += 1
    elif args[i] == "--model" and i + 1 < len(args) and args[i + 1] in ("on", "off"):
        models = (args[i + 1] == "on",); i += 1
    elif args[i] != "--quick":
        print(__doc__); sys.exit(2)
    i += 1

SERVER = os.path.join(build, "apps/pserver/eleos-pserver")
LOAD = os.path.join(build, "tools/eleos-pserver-load")
FLOOR = os.path.join(build, "bench/pserver_floor")
BATCHES = [64, 4096, 65536] if quick else [64, 512, 4096, 65536]
SETS = [("small", 32), ("large", 512)] if not quick else [("small", 32), ("large", 256)]
# Column name -> (mode, extra server flags, server binary).
MODES = {"native": ("native", [], SERVER), "sgx": ("sgx", [], SERVER),
         "eleos": ("eleos", [], SERVER), "floor": ("floor", [], SERVER)}
for x in rpc_extra:
    MODES[f"eleos_{x}"] = ("eleos", ["--rpc", x], SERVER)
if base:
    for x in ("sgx", "eleos"):
        MODES[f"base_{x}"] = (x, [], os.path.join(base, "apps/pserver/eleos-pserver"))
KEYS_PER_RUN = 60000 if quick else 200000
# A table that fits the EPC serves millions of keys a second at large batches: 200,000 keys
# would be a run of a few hundred requests, a few ms, mostly the connection's set-up (and too
# short for the I/O queue's executor trials). Such runs get at least MIN_BATCHES batches.
EPC_MIB = 93
MIN_BATCHES = 1000 if quick else 5000
if quick:
    reps = min(reps, 3)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# The calibrated cost model as the servers report it: effective cost per event (measured
# mechanism + extra charged) against its target, on this machine.
cost_lines = set()


def start(col, table_mib, model):
    mode, extra, server = MODES[col]
    port = free_port()
    cmd = [server, "--mode", mode, "-p", str(port), "--table", str(table_mib),
           "--epc", str(EPC_MIB),
           "--cost", "on" if model else "off", *extra]
    if mode == "floor":
        cmd = [FLOOR, str(port)]
    # The servers run side by side; on one platform their enclaves would share one EPC and
    # the "fits the EPC" table would page. Each gets an EPC of its own, as when measured alone.
    env = dict(os.environ, ELEOS_EPC_PLATFORM=f"bench-pserver-{os.getpid()}-{col}")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=env)
    for _ in range(20):  # the server's first lines, until it listens
        line = p.stdout.readline()
        if "cost model effective/target" in line or "cost model (raw" in line:
            cost_lines.add(line.split("eleos-pserver: ", 1)[-1].strip())
        if not line or "listening" in line:
            break
    if "listening" not in line:
        p.kill()
        raise RuntimeError(f"{' '.join(cmd)}: {line} {p.stdout.read()}")
    return p, port


def stop(p):
    """Stops the server; returns the I/O queue lines of its final statistics."""
    p.send_signal(2)
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return [l for l in (out or "").splitlines() if l.startswith("ioq")]


def run_load(port, batch, table_mib):
    keys = table_mib * (1 << 20) // 8
    n = max(20, KEYS_PER_RUN // (batch // 8))
    if table_mib < EPC_MIB:
        n = max(n, MIN_BATCHES)
    r = subprocess.run([LOAD, "-p", str(port), "-c", "1", "-b", str(batch), "-n", str(n),
                        "-k", str(keys), "--seed", str(int(time.time() * 1000) % 100000)],
                       capture_output=True, text=True, timeout=600)
    for tok in r.stdout.split():
        if tok.startswith("keys_per_s="):
            return float(tok.split("=")[1])
    raise RuntimeError(f"load generator failed: {r.stdout} {r.stderr}")


rows = []
t0 = time.time()
for set_name, table_mib in SETS:
    if points is not None and not any(s == set_name for s, _ in points):
        continue
    for model in models:
        servers = {}
        try:
            for m in MODES:  # in the try: a server that fails to start stops the others
                servers[m] = start(m, table_mib, model)
            # Warm-up: touch the table once so sgx mode's first-touch commits are not measured.
            for m in MODES:
                run_load(servers[m][1], 65536, table_mib)
            for batch in BATCHES:
                if points is not None and (set_name, batch) not in points:
                    continue
                res = {m: [] for m in MODES}
                # Interleave the modes within each repetition: drift hits them alike.
                for _ in range(reps):
                    for m in MODES:
                        res[m].append(run_load(servers[m][1], batch, table_mib))
                med = {m: statistics.median(v) for m, v in res.items()}
                rows.append((set_name, table_mib, "on" if model else "off", batch, med))
                print(f"{set_name:5} {table_mib:4} MiB model {'on ' if model else 'off'} "
                      f"batch {batch:6} B: native {med['native']:11.0f}  sgx {med['sgx']:11.0f}"
                      f"  eleos {med['eleos']:11.0f} keys/s   eleos/sgx "
                      f"{med['eleos'] / med['sgx']:5.2f}x  native/sgx "
                      f"{med['native'] / med['sgx']:5.2f}x", flush=True)
                print(f"{'':44}client floor     {med['floor']:11.0f} keys/s   floor/sgx "
                      f"{med['floor'] / med['sgx']:5.2f}x", flush=True)
                for m in rpc_extra:
                    c = f"eleos_{m}"
                    print(f"{'':44}eleos --rpc {m:6} {med[c]:11.0f} keys/s   eleos/sgx "
                          f"{med[c] / med['sgx']:5.2f}x", flush=True)
                if base:
                    print(f"{'':44}base build: sgx {med['base_sgx']:11.0f}  eleos "
                          f"{med['base_eleos']:11.0f} keys/s   eleos/sgx "
                          f"{med['base_eleos'] / med['base_sgx']:5.2f}x  this eleos/base "
                          f"eleos {med['eleos'] / med['base_eleos']:5.2f}x", flush=True)
        finally:
            for m, (p, _) in servers.items():
                for line in stop(p):
                    print(f"  [{m}, model {'on' if model else 'off'}] {line}")

print(f"# {reps} reps per point, {KEYS_PER_RUN} keys per run (at least {MIN_BATCHES} batches "
      f"below {EPC_MIB} MiB), EPC {EPC_MIB} MiB, SUVM cache 60 MiB, "
      f"RPC/I-O workers 1 (RPC spin 2 ms); eleos: --rpc auto"
      f"{''.join(', eleos_' + m + ': --rpc ' + m for m in rpc_extra)}; {time.time() - t0:.0f} s")
for line in sorted(cost_lines):
    print(f"# {line}")
if csv_path:
    with open(csv_path, "w") as f:
        f.write("set,table_mib,model,batch_bytes,native_keys_per_s,sgx_keys_per_s,"
                "eleos_keys_per_s,eleos_over_sgx,native_over_sgx,floor_keys_per_s,"
                "floor_over_sgx" +
                "".join(f",eleos_{m}_keys_per_s,eleos_{m}_over_sgx" for m in rpc_extra) + "\n")
        for set_name, table_mib, model, batch, med in rows:
            f.write(f"{set_name},{table_mib},{model},{batch},{med['native']:.0f},"
                    f"{med['sgx']:.0f},{med['eleos']:.0f},{med['eleos'] / med['sgx']:.3f},"
                    f"{med['native'] / med['sgx']:.3f},{med['floor']:.0f},"
                    f"{med['floor'] / med['sgx']:.3f}" +
                    "".join(f",{med[f'eleos_{m}']:.0f},{med[f'eleos_{m}'] / med['sgx']:.3f}"
                            for m in rpc_extra) + "\n")
