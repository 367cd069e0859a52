using System.Diagnostics;
using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// The host lock with iptables' -w semantics, across real processes. The messages are those of
/// xtables_lock_or_exit in iptables 1.8.9's xshared.c (the legacy tools; iptables-nft itself takes no lock).
/// </summary>
public sealed class LockTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "cw-lock-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private static string OutputDir => AppContext.BaseDirectory;

    private static Process Start(string dll, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = OutputDir,
        };
        psi.ArgumentList.Add(Path.Combine(OutputDir, dll));
        foreach (string a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    private static (int Exit, string Out, string Err) Finish(Process p, TimeSpan timeout)
    {
        Task<string> o = p.StandardOutput.ReadToEndAsync();
        Task<string> e = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"process {p.Id} did not finish in {timeout}");
        }
        p.WaitForExit();
        return (p.ExitCode, o.Result, e.Result);
    }

    private (int Exit, string Out, string Err) Cli(params string[] args) =>
        Finish(Start("Chainwalk.Cli.dll", ["--host", _dir, .. args]), TimeSpan.FromSeconds(60));

    private int InputRuleCount()
    {
        var (rc, output, err) = Cli("iptables", "-S", "INPUT");
        Assert.True(rc == 0, err);
        return output.Split('\n').Count(l => l.StartsWith("-A INPUT ", StringComparison.Ordinal));
    }

    private FileStream HoldLock()
    {
        Directory.CreateDirectory(_dir);
        return new FileStream(Path.Combine(_dir, HostStore.LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
    }

    [Fact]
    public void Two_processes_appending_a_thousand_rules_each_with_w_leave_two_thousand()
    {
        // Two real processes; each runs 1,000 `iptables -w -A INPUT` commands one after the other, every one
        // taking the host lock, loading the state and saving it (the CLI's path without a process start per rule).
        Process a = Start("Chainwalk.LockWorker.dll", _dir, "1000", "1");
        Process b = Start("Chainwalk.LockWorker.dll", _dir, "1000", "2");
        var ra = Finish(a, TimeSpan.FromSeconds(150));
        var rb = Finish(b, TimeSpan.FromSeconds(150));
        Assert.True(ra.Exit == 0, ra.Err);
        Assert.True(rb.Exit == 0, rb.Err);

        var store = new HostStore(_dir);
        var rules = store.LoadRules(IpFamily.V4).Find("filter")!.Find("INPUT")!.Rules;
        Assert.Equal(2000, rules.Count);
        // Every rule of each writer is there once, in that writer's order.
        var texts = rules.Select(r => Chainwalk.Syntax.RuleWriter.SaveBody(r)).ToList();
        Assert.Equal(2000, texts.Distinct(StringComparer.Ordinal).Count());
        foreach (int tag in new[] { 1, 2 })
        {
            var mine = texts.Where(t => t.Contains($" -s 10.{tag}.", StringComparison.Ordinal)).ToList();
            var expected = Enumerable.Range(0, 1000).Select(i => $" -s 10.{tag}.{i / 256}.{i % 256}/32 -j ACCEPT").ToList();
            Assert.Equal(expected, mine);
        }
    }

    [Fact]
    public void Two_cli_processes_appending_concurrently_with_w_lose_nothing()
    {
        // The CLI itself, two shell loops at once (kept short: each run is a process start).
        const int each = 25;
        Directory.CreateDirectory(_dir);
        string cli = Path.Combine(OutputDir, "Chainwalk.Cli.dll");
        Process Loop(int tag)
        {
            var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add($"i=0; while [ $i -lt {each} ]; do dotnet '{cli}' --host '{_dir}' iptables -w -A INPUT -s 10.{tag}.0.$i -j ACCEPT || exit 1; i=$((i+1)); done");
            return Process.Start(psi)!;
        }
        Process a = Loop(1), b = Loop(2);
        var ra = Finish(a, TimeSpan.FromSeconds(120));
        var rb = Finish(b, TimeSpan.FromSeconds(120));
        Assert.True(ra.Exit == 0, ra.Err);
        Assert.True(rb.Exit == 0, rb.Err);
        Assert.Equal(2 * each, InputRuleCount());
    }

    [Fact]
    public void Without_w_a_busy_lock_fails_at_once_with_exit_4()
    {
        using (HoldLock())
        {
            var (rc, output, err) = Cli("iptables", "-A", "INPUT", "-j", "ACCEPT");
            Assert.Equal(4, rc);
            Assert.Equal(string.Empty, output);
            Assert.Equal(
                "Can't lock /run/xtables.lock: Resource temporarily unavailable\n" +
                "Another app is currently holding the xtables lock. Perhaps you want to use the -w option?\n", err);
        }
        Assert.Equal(0, InputRuleCount());
    }

    [Fact]
    public void With_w_1_a_busy_lock_is_waited_for_then_fails_with_exit_4()
    {
        using (HoldLock())
        {
            var sw = Stopwatch.StartNew();
            var (rc, _, err) = Cli("iptables", "-w", "1", "-A", "INPUT", "-j", "ACCEPT");
            sw.Stop();
            Assert.Equal(4, rc);
            Assert.Equal(
                "Can't lock /run/xtables.lock: Resource temporarily unavailable\n" +
                "Another app is currently holding the xtables lock. Stopped waiting after 1s.\n", err);
            Assert.True(sw.Elapsed >= TimeSpan.FromSeconds(1), $"gave up after {sw.Elapsed}");
        }
        Assert.Equal(0, InputRuleCount());
    }

    [Fact]
    public async Task With_w_the_command_runs_once_the_lock_is_released()
    {
        FileStream held = HoldLock();
        var io = new ToolIo { In = TextReader.Null, Out = new StringWriter(), Err = new StringWriter() };
        var store = new HostStore(_dir);
        Task<int> run = Task.Run(() => IptablesCompat.Run(IpFamily.V4, ["iptables", "-w", "5", "-A", "INPUT", "-j", "ACCEPT"], store, io));
        await Task.Delay(300);
        Assert.False(run.IsCompleted);
        await held.DisposeAsync();
        int rc = await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, rc);
        Assert.Equal(string.Empty, io.Err.ToString());
        Assert.Equal(1, InputRuleCount());
    }

    [Theory]
    [InlineData("1.5")]
    [InlineData("0x10")]
    public void Wait_seconds_are_read_like_sscanf_i(string value)
    {
        var err = new StringWriter();
        var io = new ToolIo { In = TextReader.Null, Out = new StringWriter(), Err = err };
        int rc = IptablesCompat.Run(IpFamily.V4, ["iptables", "-w", value, "-S"], new HostStore(_dir), io);
        Assert.Equal(0, rc);
        Assert.Equal(string.Empty, err.ToString());
    }

    [Fact]
    public void Wait_interval_is_checked_then_ignored_with_a_notice()
    {
        var err = new StringWriter();
        var io = new ToolIo { In = TextReader.Null, Out = new StringWriter(), Err = err };
        int rc = IptablesCompat.Run(IpFamily.V4, ["iptables", "-w", "1", "-W", "100000", "-S"], new HostStore(_dir), io);
        Assert.Equal(0, rc);
        Assert.Equal("Ignoring deprecated --wait-interval option.\n", err.ToString());

        err.GetStringBuilder().Clear();
        rc = IptablesCompat.Run(IpFamily.V4, ["iptables", "-W", "-S"], new HostStore(_dir), io);
        Assert.Equal(2, rc);
        Assert.Equal("iptables v1.8.9 (nf_tables): wait interval value required\nTry `iptables -h' or 'iptables --help' for more information.\n", err.ToString());
    }
}
