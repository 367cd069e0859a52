using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// nf_tables' jump depth limit (NFT_JUMP_STACK_SIZE 16): a chain may sit at most 15 jumps below a base chain.
/// Expectations recorded from iptables 1.8.9 (nf_tables) on kernel 6.18 in a network namespace.
/// </summary>
public class JumpDepthTests
{
    /// <summary>A restore file with chains C1..Cn, each jumping to the next; INPUT jumps to C1 when <paramref name="hooked"/>.</summary>
    private static string Chain(int n, bool hooked)
    {
        var lines = new List<string> { "*filter" };
        for (int i = 1; i <= n; i++) lines.Add($":C{i} - [0:0]");
        if (hooked) lines.Add("-A INPUT -j C1");
        for (int i = 1; i < n; i++) lines.Add($"-A C{i} -j C{i + 1}");
        lines.Add("COMMIT");
        return string.Join('\n', lines) + "\n";
    }

    public static TheoryData<int, bool, int, string> Cases => new()
    {
        { 15, true, 0, "" },
        { 16, true, 4, "line 33: RULE_APPEND failed (Too many links): rule in chain C15\n" },
        { 17, true, 4, "line 34: RULE_APPEND failed (Too many links): rule in chain C15\nline 35: RULE_APPEND failed (Too many links): rule in chain C16\n" },
        { 20, true, 4, string.Concat(Enumerable.Range(15, 5).Select(i => $"line {i + 22}: RULE_APPEND failed (Too many links): rule in chain C{i}\n")) },
        { 20, false, 0, "" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Restore_refuses_chains_nested_too_deep(int chains, bool hooked, int rc, string errors)
    {
        string dir = Path.Combine(Path.GetTempPath(), "cw-depth-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var store = new HostStore(dir);
            var err = new StringWriter();
            var io = new ToolIo { In = new StringReader(Chain(chains, hooked)), Out = new StringWriter(), Err = err };
            IptablesCompat.Restore(IpFamily.V4, ["iptables-restore"], store, io).ShouldBe(rc);
            err.ToString().ShouldBe(rc == 0 ? "" : "iptables-restore v1.8.9 (nf_tables): \n" + errors);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Hooking_a_too_deep_tree_into_a_base_chain_is_refused_on_the_new_rule()
    {
        string dir = Path.Combine(Path.GetTempPath(), "cw-depth-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var store = new HostStore(dir);
            var io = new ToolIo { In = new StringReader(Chain(20, false)), Out = new StringWriter(), Err = new StringWriter() };
            IptablesCompat.Restore(IpFamily.V4, ["iptables-restore"], store, io).ShouldBe(0);
            var (rc, _, stderr) = CompatRun.Iptables(IpFamily.V4, store, "-A", "INPUT", "-j", "C1");
            rc.ShouldBe(4);
            stderr.ShouldBe("iptables v1.8.9 (nf_tables):  RULE_APPEND failed (Too many links): rule in chain INPUT\n");
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }
}
