#!/usr/bin/env python3
"""Record what the real iptables does with netfilter's .t test files, for Chainwalk's .t runner.

Usage (as root; every command runs inside a private network namespace, `unshare -n`, one per file and tool):

  tests/tools/record-tfiles.py [--extensions DIR] [--out TSV] [FILE.t ...]
      Record every file (or only the named ones) and write the TSV
      (default tests/Chainwalk.Tests/golden/tfiles/iptables-1.8.9.tsv). Naming files records only those
      and keeps the other files' rows of an existing TSV.

  tests/tools/record-tfiles.py --live [--sample N] [--seed S] [FILE.t ...]
      Re-run a sample of N (file, tool) pairs (default 12; 0 = all) against the live kernel and compare
      with the recorded TSV: exit code, saved line and first stderr line. Prints every drifting row and
      exits 1 when anything drifted, 0 otherwise. Writes nothing. Meant for CI (root), not for the test suite.

What is recorded, per .t file, per tool the file name implies (libipt_ -> iptables, libip6t_ -> ip6tables,
libxt_ -> both, anything else -> iptables), in file order:
  * a rule line `RULE;SAVED;RESULT...`: for each chain of the current chain list, `TOOL -t TABLE -A CHAIN RULE`
    (RULE split like a POSIX shell, as netfilter's harness runs it through sh); the exit code, stderr and,
    on success, the last `-A CHAIN` line of `TOOL-save -t TABLE`. The rule is then removed again
    (`-D CHAIN N`, N = its position, so set-up rules such as RATEEST stay, as netfilter's harness deletes it).
  * an `@CMD` line: `sh -c CMD` (e.g. `nfacct add test`; a missing command such as nfct records exit 127);
    chain column `@`.
  * a `%CMD` line: an iptables command; a leading `iptables` is replaced by the tool under test; chain
    column `%`, saved column empty.

TSV columns: file, line, tool, table, chain, exit, saved, stderr_first, stderr (tabs, newlines and
backslashes escaped as \\t \\n \\r \\\\). Header lines start with `#`; `# sha256 FILE HASH` lines record
which version of each .t file the rows belong to (the .t files themselves are not copied).
"""
import hashlib, json, os, platform, random, shlex, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def find_extensions():
    """../shared beside the repository; from a git worktree (e.g. /work/wt/NAME) the nearest shared/ above it."""
    d = ROOT
    while True:
        cand = os.path.join(os.path.dirname(d), "shared", "corpus", "netfilter-tests", "extensions")
        if os.path.isdir(cand) or os.path.dirname(d) == d: return cand
        d = os.path.dirname(d)


DEFAULT_EXT = find_extensions()
DEFAULT_OUT = os.path.join(ROOT, "tests", "Chainwalk.Tests", "golden", "tfiles", "iptables-1.8.9.tsv")
COLUMNS = ["file", "line", "tool", "table", "chain", "exit", "saved", "stderr_first", "stderr"]


def tools_for(name):
    if name.startswith("libipt_"): return ["iptables"]
    if name.startswith("libip6t_"): return ["ip6tables"]
    if name.startswith("libxt_"): return ["iptables", "ip6tables"]
    return ["iptables"]


def parse_t(path):
    """Yields (line, kind, text, table, chains); kind is 'rule', '@' or '%'."""
    chains, table = [], "filter"
    with open(path, encoding="utf-8") as f:
        for no, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip() or line.startswith("#"): continue
            if line.startswith(":"): chains = line.rstrip()[1:].split(","); continue
            if line.startswith("*"): table = line.rstrip()[1:]; continue
            if line[0] in "@%": yield no, line[0], line.rstrip()[1:], table, chains; continue
            yield no, "rule", line.split(";")[0], table, chains


def tool_command(text, tool):
    """A %-line's argv: a leading iptables is the tool under test."""
    argv = shlex.split(text)
    if argv and argv[0] in ("iptables", "ip6tables"): argv[0] = tool
    return argv


def run(argv, shell=False):
    try:
        p = subprocess.run(argv, shell=shell, capture_output=True, text=True, errors="replace")
        return p.returncode, p.stdout, p.stderr
    except FileNotFoundError as e:
        return 127, "", str(e) + "\n"


def chain_lines(save_out, chain):
    return [l for l in save_out.splitlines() if l.startswith("-A " + chain + " ") or l == "-A " + chain]


def inner(tool, path):
    """Runs inside the private namespace: replays one file for one tool, prints JSON rows."""
    rows = []
    name = os.path.basename(path)
    for no, kind, text, table, chains in parse_t(path):
        if kind == "@":
            rc, _, err = run(text, shell=True)
            rows.append([name, no, tool, table, "@", rc, "", err])
            continue
        if kind == "%":
            rc, _, err = run(tool_command(text, tool))
            rows.append([name, no, tool, table, "%", rc, "", err])
            continue
        args = shlex.split(text)
        for chain in chains:
            rc, _, err = run([tool, "-t", table, "-A", chain] + args)
            saved = ""
            if rc == 0:
                src, out, serr = run([tool + "-save", "-t", table])
                lines = chain_lines(out, chain)
                saved = lines[-1] if lines else "(none)"
                if lines:
                    drc, _, derr = run([tool, "-t", table, "-D", chain, str(len(lines))])
                    if drc != 0: sys.stderr.write(f"{name}:{no} {tool} {chain}: delete failed: {derr}")
            rows.append([name, no, tool, table, chain, rc, saved, err])
    json.dump(rows, sys.stdout)


def replay(tool, path):
    """One `unshare -n` per file and tool."""
    p = subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__), "--inner", tool, path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"replay of {path} with {tool} failed: {p.stderr}")
    if p.stderr: sys.stderr.write(p.stderr)
    return json.loads(p.stdout)


def esc(s):
    return str(s).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def unesc(s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(s[i + 1], s[i + 1])); i += 2
        else:
            out.append(c); i += 1
    return "".join(out)


def first_line(err):
    return (err.splitlines() or [""])[0]


def to_tsv(row):
    name, no, tool, table, chain, rc, saved, err = row
    return "\t".join(esc(x) for x in [name, no, tool, table, chain, rc, saved, first_line(err), err])


def read_tsv(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"): continue
            cols = [unesc(c) for c in line.split("\t")]
            if cols[0] == "file": continue
            rows.append(cols)
    return rows


def sha256(path):
    with open(path, "rb") as f: return hashlib.sha256(f.read()).hexdigest()


def version(tool):
    return run([tool, "-V"])[1].strip()


def pairs(ext, names):
    files = sorted(names) if names else sorted(f for f in os.listdir(ext) if f.endswith(".t"))
    return [(f, t) for f in files for t in tools_for(f)]


def record(ext, out, names):
    keep = []
    if names and os.path.exists(out):
        keep = [r for r in read_tsv(out) if r[0] not in names]
    rows_by_file = {}
    for r in keep:
        rows_by_file.setdefault(r[0], []).append("\t".join(esc(c) for c in r))
    t0 = time.time()
    for f, tool in pairs(ext, names):
        for row in replay(tool, os.path.join(ext, f)):
            rows_by_file.setdefault(f, []).append(to_tsv(row))
        sys.stderr.write(f"{f} {tool} done ({time.time() - t0:.0f}s)\n")
    all_files = sorted(f for f in os.listdir(ext) if f.endswith(".t"))
    head = [
        "# Chainwalk .t runner expectations: what the real iptables did with netfilter's extensions/*.t test lines.",
        "# Recorded by tests/tools/record-tfiles.py on " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()) + ".",
        f"# {version('iptables')}, {version('ip6tables')}; kernel {platform.release()}; "
        + open("/etc/os-release").read().split('PRETTY_NAME="')[1].split('"')[0] + ".",
        "# Each (file, tool) replayed in its own `unshare -n` namespace: TOOL -t TABLE -A CHAIN RULE, then TOOL-save -t TABLE"
        " (last -A CHAIN line), then -D CHAIN N. @ lines run with sh -c, % lines with the tool under test.",
        "# Host state at recording: nfacct " + ("present" if run(["sh", "-c", "command -v nfacct"])[0] == 0 else "absent")
        + ", nfct " + ("present" if run(["sh", "-c", "command -v nfct"])[0] == 0 else "absent")
        + ", /etc/xtables/connlabel.conf " + ("present" if os.path.exists("/etc/xtables/connlabel.conf") else "absent") + ".",
        "# The .t files are not copied here: rows refer to them by file name and line number; sha256 lines pin their version.",
    ]
    head += [f"# sha256 {f} {sha256(os.path.join(ext, f))}" for f in all_files]
    head.append("\t".join(COLUMNS))
    body = []
    for f in sorted(rows_by_file): body += rows_by_file[f]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        fh.write("\n".join(head + body) + "\n")
    print(f"wrote {len(body)} rows to {out}")


def live(ext, out, names, sample, seed):
    recorded = {}
    for r in read_tsv(out):
        recorded[(r[0], int(r[1]), r[2], r[4])] = r
    todo = pairs(ext, names)
    if sample and sample < len(todo):
        todo = sorted(random.Random(seed).sample(todo, sample))
    shas = {}
    with open(out, encoding="utf-8") as fh:
        for line in fh:
            h = line.split()
            if len(h) == 4 and h[:2] == ["#", "sha256"]: shas[h[2]] = h[3]
    print("sampled: " + ", ".join(f"{f} ({t})" for f, t in todo))
    checked = drift = 0
    for f, tool in todo:
        if shas.get(f) != sha256(os.path.join(ext, f)):
            drift += 1
            print(f"DRIFT {f}: the .t file differs from the recorded version (sha256); re-record it")
            continue
        for row in replay(tool, os.path.join(ext, f)):
            name, no, tool_, table, chain, rc, saved, err = row
            checked += 1
            want = recorded.get((name, no, tool_, chain))
            got = [str(rc), saved, first_line(err)]
            if want is None:
                drift += 1
                print(f"DRIFT {name}:{no} {tool_} {chain}: not recorded; live exit={rc} saved={saved!r} err={first_line(err)!r}")
                continue
            if [want[5], want[6], want[7]] != got:
                drift += 1
                print(f"DRIFT {name}:{no} {tool_} {chain}:")
                print(f"   recorded exit={want[5]} saved={want[6]!r} err={want[7]!r}")
                print(f"   live     exit={rc} saved={saved!r} err={first_line(err)!r}")
    print(f"live check: {len(todo)} (file, tool) pairs, {checked} rows, {drift} drifted"
          f" ({version('iptables')}, kernel {platform.release()})")
    return 1 if drift else 0


def main():
    argv = sys.argv[1:]
    if argv[:1] == ["--inner"]:
        inner(argv[1], argv[2]); return 0
    ext, out, mode, sample, seed, names = DEFAULT_EXT, DEFAULT_OUT, "record", 12, None, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--extensions": ext = argv[i + 1]; i += 2; continue
        if a == "--out": out = argv[i + 1]; i += 2; continue
        if a == "--live": mode = "live"; i += 1; continue
        if a == "--sample": sample = int(argv[i + 1]); i += 2; continue
        if a == "--seed": seed = int(argv[i + 1]); i += 2; continue
        if a in ("-h", "--help"): print(__doc__); return 0
        names.append(os.path.basename(a)); i += 1
    if os.geteuid() != 0: sys.exit("needs root (unshare -n)")
    if mode == "live": return live(ext, out, names, sample, seed)
    record(ext, out, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
