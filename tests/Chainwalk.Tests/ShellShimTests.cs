using System.Diagnostics;
using Chainwalk.Tests.Support;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// <c>eval "$(chainwalk --host DIR env)"</c> puts shims for the compat tools first on PATH, and shell
/// scripts from the guide run through them unmodified. Scripts run with bash and the CLI built beside
/// the tests (Chainwalk.Cli in this output directory).
/// </summary>
public class ShellShimTests
{
    private static readonly string[] ShimmedTools =
        ["iptables", "ip6tables", "iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore", "ip", "sysctl", "ipset"];

    private static string Cli => CliCommand.Shell;

    private static string Quote(string s) => CliCommand.Quote(s);

    /// <summary>Runs a bash snippet with $HOSTDIR set; returns stdout+stderr and the exit code.</summary>
    /// <summary>Runs a bash snippet with $CLI and $HOSTDIR set (for other tests that drive the shims).</summary>
    internal static (string Output, int Code) RunBash(string snippet, string hostDir, params string[] args) => Bash(snippet, hostDir, args);

    private static (string Output, int Code) Bash(string snippet, string hostDir, params string[] args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec 2>&1\n" + snippet);
        psi.ArgumentList.Add("bash");
        foreach (string a in args) psi.ArgumentList.Add(a);
        psi.Environment["HOSTDIR"] = hostDir;
        psi.Environment["CLI"] = Cli;
        psi.Environment.Remove("CHAINWALK_HOST");
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (output, p.ExitCode);
    }

    [Fact]
    public void Env_puts_pinned_shims_first_on_path()
    {
        string hostDir = Directory.CreateTempSubdirectory("cw-env-").FullName;
        try
        {
            (string output, int code) = Bash("""
eval "$(eval "$CLI" --host "$HOSTDIR" env)"
for t in iptables ip6tables iptables-save iptables-restore ip6tables-save ip6tables-restore ip sysctl ipset; do
  command -v "$t"
done
ip link add v0 type veth peer name v1
ip link set v0 up
sysctl -w net.ipv4.ip_forward=1
iptables -A FORWARD -i v0 -j ACCEPT
ip6tables -P INPUT DROP
iptables-save | iptables-restore
sudo -E iptables -A INPUT -p tcp --dport 22 -j ACCEPT
ip -br link show v0
ipset create web hash:ip,port
ipset add web 10.0.0.1,80
iptables -A INPUT -m set --match-set web dst,dst -j ACCEPT
""", hostDir);
            code.ShouldBe(0, output);
            string[] lines = output.Split('\n');
            for (int i = 0; i < ShimmedTools.Length; i++)
            {
                lines[i].ShouldBe(Path.Combine(hostDir, ".shims", ShimmedTools[i]));
                string shim = File.ReadAllText(lines[i]);
                // Pinned: one exec of the built CLI with the host directory, nothing resolved per call.
                shim.ShouldContain("--host " + Quote(hostDir));
                shim.ShouldNotContain("CHAINWALK_HOST");
                shim.ShouldNotContain("dotnet build");
            }
            output.ShouldContain("net.ipv4.ip_forward = 1\n");
            output.ShouldContain("v0@v1            LOWERLAYERDOWN ");
            File.ReadAllText(Path.Combine(hostDir, "iptables.rules")).ShouldContain("-A FORWARD -i v0 -j ACCEPT");
            File.ReadAllText(Path.Combine(hostDir, "iptables.rules")).ShouldContain("-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT");
            File.ReadAllText(Path.Combine(hostDir, "ip6tables.rules")).ShouldContain(":INPUT DROP");
            File.ReadAllText(Path.Combine(hostDir, "iptables.rules")).ShouldContain("-A INPUT -m set --match-set web dst,dst -j ACCEPT");
            File.ReadAllText(Path.Combine(hostDir, "ipset.rules")).ShouldContain("add web 10.0.0.1,tcp:80\n");
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }

    /// <summary>
    /// Lab 1 of the guide, taken from ../shared/seeds at test time, runs under bash -e through the shims;
    /// what it prints and what <c>iptables -L -v -n</c> prints after it must equal what the real
    /// iptables printed for it in a network namespace (golden/labs, tests/tools/record-lab.sh).
    /// Needs -m conntrack.
    /// </summary>
    [Fact]
    public void Lab1_basic_stateful_firewall_runs_unmodified_through_the_shims()
    {
        string guide = Directory.EnumerateFiles(Path.Combine(TestPaths.Shared, "seeds"), "000_*.txt").Order(StringComparer.Ordinal).First();
        string extractor = Path.Combine(TestPaths.RepoRoot, "tests", "tools", "extract-lab.sh");
        string hostDir = Directory.CreateTempSubdirectory("cw-lab1-").FullName;
        string script = Path.Combine(hostDir, "firewall-basic.sh");
        try
        {
            (string extracted, int xc) = Bash("bash \"$1\" \"$2\" \"$3\"", hostDir, extractor, guide, "Lab 1: Basic Stateful Firewall");
            xc.ShouldBe(0, extracted);
            extracted.ShouldContain("iptables -P INPUT DROP");
            File.WriteAllText(script, extracted);
            (string output, int _) = Bash("""
eval "$(eval "$CLI" --host "$HOSTDIR" env)"
echo "# script output"
bash -e "$1"
echo "# rc=$?"
echo "# iptables -L -v -n"
iptables -L -v -n
""", hostDir, script);
            string expected = File.ReadAllText(Path.Combine(TestPaths.Golden, "labs", "lab1-basic-stateful.out"));
            output.ShouldBe(expected);
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }

    /// <summary>
    /// Lab 1's promise, checked with packets: after the guide's script ran unmodified through the shims, SSH and
    /// HTTP from another machine are delivered and 443 times out (dropped, not rejected); the server's own
    /// connections get their answers back (ESTABLISHED).
    /// </summary>
    [Fact]
    public void Lab1_lets_ssh_and_http_in_and_drops_443()
    {
        string guide = Directory.EnumerateFiles(Path.Combine(TestPaths.Shared, "seeds"), "000_*.txt").Order(StringComparer.Ordinal).First();
        string extractor = Path.Combine(TestPaths.RepoRoot, "tests", "tools", "extract-lab.sh");
        string hostDir = Directory.CreateTempSubdirectory("cw-lab1-").FullName;
        string script = Path.Combine(hostDir, "firewall-basic.sh");
        try
        {
            (string extracted, int xc) = Bash("bash \"$1\" \"$2\" \"$3\"", hostDir, extractor, guide, "Lab 1: Basic Stateful Firewall");
            xc.ShouldBe(0, extracted);
            File.WriteAllText(script, extracted);
            (string output, int rc) = Bash("""
eval "$(eval "$CLI" --host "$HOSTDIR" env)"
bash -e "$1" >/dev/null
ip link add eth0 type dummy && ip link set eth0 up && ip addr add 192.0.2.10/24 dev eth0
t() { eval "$CLI" --host "$HOSTDIR" trace "$@" --json; }
t -i eth0 -p tcp -s 192.0.2.50 -d 192.0.2.10 --sport 40000 --dport 22 --syn
t -i eth0 -p tcp -s 192.0.2.50 -d 192.0.2.10 --sport 40001 --dport 80 --syn
t -i eth0 -p tcp -s 192.0.2.50 -d 192.0.2.10 --sport 40002 --dport 443 --syn
t --local -p tcp -d 192.0.2.50 --sport 50000 --dport 443 --syn --seq 7
t -i eth0 -p tcp -s 192.0.2.50 -d 192.0.2.10 --sport 443 --dport 50000 --tcp-flags SYN,ACK --seq 100 --ack 8
t -i lo -p tcp -s 127.0.0.1 -d 127.0.0.1 --sport 40003 --dport 5432 --syn
""", hostDir, script);
            rc.ShouldBe(0, output);
            string[] fates = output.Trim().Split('\n').Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!["fate"]![0]!.GetValue<string>()).ToArray();
            fates.ShouldBe(["delivered-local", "delivered-local", "dropped", "sent:eth0", "delivered-local", "delivered-local"], output);
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }

    /// <summary>
    /// Lab 4 of the guide: a LOG rule at the top of INPUT, a packet, and the line found with journalctl | grep;
    /// then the debug rule removed.
    /// </summary>
    [Fact]
    public void Lab4_debug_log_lines_show_in_the_journal()
    {
        string hostDir = Directory.CreateTempSubdirectory("cw-lab4-").FullName;
        try
        {
            (string output, int rc) = Bash("""
eval "$(eval "$CLI" --host "$HOSTDIR" env)"
ip link add eth0 type dummy && ip link set eth0 up && ip addr add 192.0.2.10/24 dev eth0
iptables -P INPUT DROP
iptables -A INPUT -p tcp --dport 22 -j ACCEPT
iptables -I INPUT 1 -j LOG --log-prefix "DEBUG-INPUT: "
eval "$CLI" --host "$HOSTDIR" trace -i eth0 -p tcp -s 192.0.2.50 -d 192.0.2.10 --sport 40000 --dport 8080 --syn >/dev/null
journalctl -f | grep DEBUG-INPUT
dmesg | grep -c DPT=8080
iptables -D INPUT 1
iptables -S INPUT
""", hostDir);
            rc.ShouldBe(0, output);
            string[] lines = output.TrimEnd().Split('\n');
            lines[0].ShouldMatch(@"^Jan 01 00:00:00 chainwalk kernel: DEBUG-INPUT: IN=eth0 OUT= MAC=[0-9a-f:]{41} SRC=192\.0\.2\.50 DST=192\.0\.2\.10 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=TCP SPT=40000 DPT=8080 WINDOW=64240 RES=0x00 SYN URGP=0$");
            lines[1].ShouldBe("1");
            lines[2..].ShouldBe(["-P INPUT DROP", "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"]);
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }
}
