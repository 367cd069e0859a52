using System.Diagnostics;
using Chainwalk.Compat;
using Chainwalk.Tests.Support;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// A tool started with standard input closed (<c>iptables-restore &lt;&amp;-</c>) reads it as empty input and finishes as
/// with <c>&lt;/dev/null</c>: exit 0 and no output for the restores, as iptables-legacy-restore 1.8.9 does (recorded in a
/// namespace: <c>iptables-legacy-restore &lt;&amp;-; echo $?</c> prints 0). iptables-nft-restore 1.8.9 hangs there instead
/// (its netlink socket takes fd 0 and it reads its own socket): a difference on purpose, named in
/// tests/conformance/known-differences.md. Each run has a time limit, so a hang fails the test.
/// </summary>
public class ClosedStdinTests
{
    private static string Cli => CliCommand.Shell;

    private static string Quote(string s) => CliCommand.Quote(s);

    /// <summary>Runs <paramref name="command"/> (the CLI itself, or a shim on PATH) with stdin as <paramref name="stdin"/>, at most 60 s.</summary>
    private static (int Rc, string Out, string Err) Run(string hostDir, bool shim, string command, string stdin)
    {
        string prefix = shim ? "eval \"$(eval \"$CLI\" --host \"$HOSTDIR\" env)\"\n" : "";
        string run = shim ? command : "eval \"$CLI\" --host \"$HOSTDIR\" " + command;
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        // The time limit inside too: a hung tool is killed (exit 124) rather than left behind.
        psi.ArgumentList.Add(prefix + $"{run} {stdin}");
        psi.Environment["HOSTDIR"] = hostDir;
        psi.Environment["CLI"] = shim ? Cli : "timeout 50 " + Cli;
        psi.Environment.Remove("CHAINWALK_HOST");
        using var p = Process.Start(psi)!;
        Task<string> o = p.StandardOutput.ReadToEndAsync();
        Task<string> e = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"'{command} {stdin}' did not finish: it waits on standard input");
        }
        p.WaitForExit();
        return (p.ExitCode, o.Result, e.Result);
    }

    public static TheoryData<bool, string, int> Commands => new()
    {
        { false, "iptables-restore", 0 },
        { false, "ip6tables-restore", 0 },
        { false, "iptables-restore --test", 0 },
        { false, "iptables-restore --noflush", 0 },
        { false, "iptables-save", 0 },
        { false, "ipset restore", 0 },
        { false, "--json iptables-restore", 0 },
        { true, "iptables-restore", 0 },
        { true, "ip6tables-restore -n", 0 },
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public void A_closed_standard_input_reads_as_empty(bool shim, string command, int rc)
    {
        string hostDir = Directory.CreateTempSubdirectory("cw-stdin-").FullName;
        try
        {
            var closed = Run(hostDir, shim, command, "<&-");
            var empty = Run(hostDir, shim, command, "</dev/null");
            closed.Rc.ShouldBe(rc, closed.Err);
            closed.ShouldBe(empty);
        }
        finally
        {
            Directory.Delete(hostDir, recursive: true);
        }
    }

    [Fact]
    public void An_open_standard_input_is_not_taken_for_a_closed_one()
    {
        // This test process's own fd 0 (whatever the runner gave it) is open and not a pipe of its own making.
        StandardInput.Detect("/proc/self/fd").ShouldBeFalse();
        StandardInput.Detect("/nonexistent/fd").ShouldBeFalse();
    }
}
